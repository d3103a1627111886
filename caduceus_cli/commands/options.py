"""The option vocabulary of the commands: the Typer types of the options several commands share,
the choices of options as enums, and the `--help` panels.

Options are shown in `--help` in panels, as bcftools groups its usage: what goes in, what comes out,
the command's own settings, and the model and runtime (`runtime.runtime_options` adds the last).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli.scoring.settings import MAX_DEFAULT_WINDOW, SCORES
from caduceus_cli.scoring.tracks import TRACK_SCORES

# --help panels, in the order a command's usage reads
INPUT, OUTPUT, WINDOWS, SCORING, RUNTIME = "Input", "Output", "Windows", "Scores", "Model and runtime"


def choices(name: str, values: Iterable[str]) -> type[Enum]:
    """An option's choices as an Enum made from the module constant that defines them, so they cannot drift."""
    return Enum(name, [(value, value) for value in values], type=str)


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", metavar="MODEL", rich_help_panel=RUNTIME,
        help="Checkpoint folder or Hugging Face hub id. Default: the shipped demonstration model.",
    ),
]  # fmt: skip
RevisionOpt = Annotated[
    str | None,
    typer.Option("--revision", metavar="REV", help="Hub revision (branch, tag or commit).", rich_help_panel=RUNTIME),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N.", rich_help_panel=RUNTIME)
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype", metavar="DTYPE", rich_help_panel=RUNTIME,
        help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16, float64.",
    ),
]  # fmt: skip
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads", "-@", metavar="N", rich_help_panel=RUNTIME,
        help="CPU threads for reading and the CPU model. Default: the CPUs this process may use.",
    ),
]  # fmt: skip
BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size", metavar="N", help="Windows per forward pass. Default: from free GPU memory.",
        rich_help_panel=RUNTIME,
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar and no info messages.", rich_help_panel=RUNTIME)
]
LogFileOpt = Annotated[
    Path | None,
    typer.Option("--log-file", metavar="FILE", help="Also write the log to this file.", rich_help_panel=RUNTIME),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", "-f", help="Overwrite an existing output file.", rich_help_panel=OUTPUT)
]
FastaArg = Annotated[
    Path, typer.Argument(metavar="FASTA", help="Reference FASTA, plain or bgzip (.fai/.gzi made if missing).")
]
RegionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--region", "-r", metavar="chr:start-end", help="Region, 1-based inclusive; repeatable.",
        rich_help_panel=INPUT,
    ),
]
ChromMapOpt = Annotated[
    Path | None,
    typer.Option(
        "--chrom-map", metavar="FILE", help="Two columns: contig name in the input, name in the FASTA.",
        rich_help_panel=INPUT,
    ),
]
TileWindowOpt = Annotated[
    int | None,
    typer.Option(
        "--window", metavar="N", help="Tile length for long regions. Default: the model's training length.",
        rich_help_panel=WINDOWS,
    ),
]  # fmt: skip
OverlapOpt = Annotated[
    int | None,
    typer.Option(
        "--overlap", metavar="N", help="Bases shared by neighbouring tiles. Default: window // 8.",
        rich_help_panel=WINDOWS,
    ),
]
VariantIndexOpt = Annotated[
    int | None,
    typer.Option(
        "--variant-index",
        metavar="I",
        help="0-based index of the variant in its window. Default: W/2. PlantCaduceus' own zero-shot "
        "script uses 255 of 512.",
        rich_help_panel=WINDOWS,
    ),
]
# the variant scores of score-variants and calibrate (a background serves runs of the same ones)
VariantScore = choices("VariantScore", SCORES)
VariantScoreOpt = Annotated[
    list[VariantScore] | None,
    typer.Option(
        "--score", "-s", metavar="NAME", rich_help_panel=SCORING,
        help=f"Score to compute: {', '.join(SCORES)}; repeat for several. Default: llr.",
    ),
]  # fmt: skip
# the per-base scores of track
TrackScore = choices("TrackScore", TRACK_SCORES)


EmbFlankOpt = Annotated[
    int,
    typer.Option(
        "--emb-flank", metavar="F", help="Bases each side of the variant averaged for emb-cos/emb-l2.",
        rich_help_panel=SCORING,
    ),
]  # fmt: skip
VariantWindowOpt = Annotated[
    int | None,
    typer.Option(
        "--window",
        "-w",
        metavar="W",
        help=f"Bases of context per variant (even, >= 2). Default: the model's training length, at most "
        f"{MAX_DEFAULT_WINDOW}.",
        rich_help_panel=WINDOWS,
    ),
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard", metavar="I/N", help="Process only the I-th of N deterministic parts (1-based).",
        rich_help_panel=INPUT,
    ),
]
