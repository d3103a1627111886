"""Options and plumbing shared by every command: model, device, threads, shards (logs and progress: terminal.py).

Every command that runs a model takes the same model and runtime options; `runtime_options` adds
them to its signature, applies the process-wide ones (log, threads) and hands the command one
`Runtime`. Options are shown in `--help` in panels, as bcftools groups its usage: what goes in,
what comes out, the command's own settings, and the model and runtime.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import shlex
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli.errors import UsageError
from caduceus_cli.scoring.settings import DEFAULT_SCORES, MAX_DEFAULT_WINDOW, SCORES
from caduceus_cli.windows import FALLBACK_WINDOW, check_tiling, default_overlap

log = logging.getLogger("caduceus")

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
Score = choices("Score", SCORES)
ScoreOpt = Annotated[
    list[Score] | None,
    typer.Option(
        "--score", "-s", metavar="NAME", rich_help_panel=SCORING,
        help=f"Score to compute: {', '.join(SCORES)}; repeat for several. Default: llr.",
    ),
]  # fmt: skip
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


@dataclass(frozen=True)
class Runtime:
    """The model and runtime options of a command (`runtime_options`), and what they open."""

    model: ModelOpt = None
    revision: RevisionOpt = None
    device: DeviceOpt = "auto"
    dtype: DtypeOpt = "auto"
    batch_size: BatchSizeOpt = None
    threads: ThreadsOpt = None
    quiet: QuietOpt = False
    log_file: LogFileOpt = None

    def load_model(self):
        """The asked-for checkpoint (the shipped default when none) on the asked-for device and dtype."""
        return open_model(self.model, self.revision, self.device, self.dtype)

    def trained_window(self) -> int | None:
        """The checkpoint's training length (what --window defaults to), read from its small files: the
        window options are checked against it before the weights load."""
        from caduceus_cli.model.load import checkpoint_facts

        return checkpoint_facts(model_source(self.model), self.revision).training_length

    def engine(self, model):
        from caduceus_cli.engine import Engine

        return Engine(model, batch_size=self.batch_size)


def runtime_options(command: Callable) -> Callable:
    """Give a command the `Runtime` options (appended to its own, in `--help`'s "Model and runtime"
    panel): they are parsed by Typer from the signature built here, the log and threads are set up
    before the command runs, and the command receives them as its `runtime` argument."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "runtime"]
    hints = inspect.get_annotations(Runtime, eval_str=True)
    added = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
        for f in fields(Runtime)
    ]

    @functools.wraps(command)
    def run(**options):
        runtime = Runtime(**{f.name: options.pop(f.name) for f in fields(Runtime)})
        from caduceus_cli.terminal import setup_logging

        setup_logging(runtime.quiet, runtime.log_file)
        set_threads(runtime.threads)
        return command(runtime=runtime, **options)

    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
    run.__signature__ = inspect.Signature(parameters)
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run


def set_threads(threads: int | None) -> int:
    """Apply --threads, by default every CPU this process may use (its affinity mask: a cluster job's
    allocation, not the node's cores); returns the count."""
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if threads < 1:
        raise UsageError(f"--threads {threads}: must be at least 1")
    import torch  # here: the commands that run no model (merge, info's listing) do not pay for it

    torch.set_num_threads(threads)
    return threads


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I-1, N) with 0-based index; None when not sharding."""
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as err:
        raise UsageError(f"--shard {text}: expected I/N, e.g. 2/8") from err
    if not 1 <= index <= count:
        raise UsageError(f"--shard {text}: need 1 <= I <= N")
    return index - 1, count


def tiling(trained: int | None, window: int | None, overlap: int | None) -> tuple[int, int]:
    """--window and --overlap of the tiled commands (embed, track), defaults filled in and checked.

    The window defaults to the model's training length `trained`, else FALLBACK_WINDOW (logged); the
    overlap to `default_overlap(window)`."""
    if window is None:
        window = trained
    if window is None:
        window = FALLBACK_WINDOW
        log.info(
            "the model records no training length; tiling with --window %d (the published models' length)",
            window,
        )
    overlap = default_overlap(window) if overlap is None else overlap
    try:
        check_tiling(window, overlap)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return window, overlap


def variant_scores(score: list[Score] | None) -> tuple[str, ...]:
    """The --score values asked for, each once, in the order asked; the default when none."""
    return tuple(dict.fromkeys(s.value for s in score)) if score else DEFAULT_SCORES


def check_variant_window(window: int | None, variant_index: int | None) -> None:
    """The --window and --variant-index given to score-variants or ism, checked before any work."""
    from caduceus_cli.scoring.settings import check_variant_index, check_window

    if window is not None:
        check_window(window)
        if variant_index is not None:
            check_variant_index(variant_index, window)


def variant_window(trained: int | None, window: int | None, variant_index: int | None) -> int:
    """--window of score-variants, calibrate and ism, defaulting to the model's training length `trained`,
    at most MAX_DEFAULT_WINDOW (logged when the model records none); --variant-index checked against it."""
    from caduceus_cli.scoring.settings import check_variant_index, default_window

    if window is None:
        window = default_window(trained)
        if trained is None:
            log.info(
                "the model records no training length; scoring with --window %d (the largest default)", window
            )
        if variant_index is not None:
            check_variant_index(variant_index, window)
    return window


def command_line() -> str:
    """The command as typed, for provenance records in outputs."""
    return shlex.join(["caduceus", *sys.argv[1:]])


def chrom_map_names(chrom_map: Path | None) -> dict[str, str] | None:
    """--chrom-map's names (input name -> FASTA name), read once: it may be a pipe, and a command may
    open the reference more than once (`open_reference`)."""
    from caduceus_cli.io.contigs import read_chrom_map

    return read_chrom_map(chrom_map) if chrom_map else None


def open_reference(fasta: Path, names: dict[str, str] | None):
    """The reference FASTA, its contigs also reachable by the input names of `chrom_map_names`."""
    from caduceus_cli.io.fasta import Fasta

    return Fasta(fasta, names)


def model_source(model: str | None) -> str:
    """What -m names: a folder or hub id as given, or the shipped model's folder when it is not given."""
    from caduceus_cli.model.load import default_model_path

    return model if model is not None else str(default_model_path())


# What a run on the shipped model is good for: on the example VCF its mean llr is highest for nonsense
# SNVs and lowest for synonymous ones, the reverse of biology (README, docs/models.md).
SHIPPED_MODEL_NOTE = (
    "no --model: this is the shipped demonstration model, for trying the tool, not for biology; for real "
    "data use a published checkpoint, e.g. -m kuleshov-group/PlantCaduceus_l32 (plants) or "
    "-m kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16 (human); caduceus models lists them"
)


def open_model(model: str | None, revision: str | None, device: str, dtype: str):
    """Load the asked-for checkpoint (the shipped default when none) on the resolved device and dtype."""
    from caduceus_cli.device import resolve_device, resolve_dtype
    from caduceus_cli.model.load import load_model

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    source = model_source(model)
    loaded = load_model(source, device=torch_device, dtype=torch_dtype, revision=revision)
    log.info(
        "model %s (%s, %s, d_model %d, %d layers) on %s in %s",
        source,
        loaded.variant.upper(),
        loaded.config.mixer.kind,
        loaded.config.d_model,
        loaded.config.n_layer,
        torch_device,
        str(torch_dtype).removeprefix("torch."),
    )
    if loaded.default_window is not None:
        log.info("training length %s bases, from %s", f"{loaded.default_window:,}", loaded.window_source)
    if model is None:
        log.info(SHIPPED_MODEL_NOTE)
    return loaded
