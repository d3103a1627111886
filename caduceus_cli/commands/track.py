"""`caduceus track`: per-base score tracks (bigWig or bgzipped bedGraph) of FASTA regions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli.commands.inputs import tiled_input
from caduceus_cli.commands.options import (
    INPUT,
    OUTPUT,
    SCORING,
    ChromMapOpt,
    FastaArg,
    ForceOpt,
    OverlapOpt,
    RegionOpt,
    ShardOpt,
    TileWindowOpt,
    TrackScore,
    choices,
)
from caduceus_cli.commands.resolve import scores_asked
from caduceus_cli.commands.runtime import Runtime, runtime_options
from caduceus_cli.errors import UsageError
from caduceus_cli.io.outputs import check_writable_output
from caduceus_cli.io.tracks import TRACK_FORMATS, TRACK_SUFFIXES, pybigwig, track_format
from caduceus_cli.pipelines.track import TrackJob
from caduceus_cli.scoring.tracks import TRACK_SCORES

Format = choices("Format", TRACK_FORMATS)
DEFAULT_SCORE = "llr-min"


@runtime_options
def track(
    fasta: FastaArg,
    *,
    regions_bed: Annotated[
        Path | None,
        typer.Option(
            "--regions", "-R", metavar="BED", help="BED file of regions (0-based; must not overlap).",
            rich_help_panel=INPUT,
        ),
    ] = None,
    region: RegionOpt = None,
    chrom_map: ChromMapOpt = None,
    shard: ShardOpt = None,
    window: TileWindowOpt = None,
    overlap: OverlapOpt = None,
    score: Annotated[
        list[TrackScore] | None,
        typer.Option(
            "--score", "-s", metavar="NAME",
            help=f"Score to write: {', '.join(TRACK_SCORES)}; repeat for several. Default: {DEFAULT_SCORE}.",
            rich_help_panel=SCORING,
        ),
    ] = None,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Track (.bw, or .bedgraph.gz); OUT.<score>.bw for several scores.",
            rich_help_panel=OUTPUT,
        ),
    ],
    fmt: Annotated[
        Format | None,
        typer.Option(
            "--format", metavar="FORMAT",
            help="bigwig or bedgraph (bgzipped). Default: from -o (.bw, .bigwig; .bedgraph.gz, .bg.gz), else bigwig.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    force: ForceOpt = False,
    runtime: Runtime,
) -> None:
    """Write per-base model scores of FASTA regions (all contigs by default) as bigWig or bedGraph tracks."""
    if str(output) == "-":
        raise UsageError("-o -: a track is written to a file (bigWig cannot be streamed); give a file name")
    scores = scores_asked(score, (DEFAULT_SCORE,))
    fmt_name = track_format(output, fmt.value if fmt else None)
    if fmt_name == "bigwig":
        pybigwig()  # the writer's package, before any work
    paths = output_paths(output, scores)
    for path in paths.values():
        check_writable_output(path, force)
    with tiled_input(
        fasta, runtime, regions_bed=regions_bed, region=region, chrom_map=chrom_map, window=window,
        overlap=overlap, shard=shard, outputs=list(paths.values()),
    ) as tiled:  # fmt: skip
        model = runtime.load_model()
        job = TrackJob(
            outputs=paths, regions=tiled.regions, window=tiled.window, overlap=tiled.overlap,
            track_format=fmt_name, shard=tiled.shard,
        )  # fmt: skip
        job.run(runtime.engine(model), tiled.reference, runtime.quiet)


_SUFFIXES = (*TRACK_SUFFIXES, ".gz")


def output_paths(output: Path, scores: Sequence[str]) -> dict[str, Path]:
    """The file of each score: `output` for one score; for several OUT.<score>.bw (score before suffix)."""
    if len(scores) == 1:
        return {scores[0]: output}
    name = output.name
    suffix = next((s for s in _SUFFIXES if name.lower().endswith(s)), "")
    stem = name[: len(name) - len(suffix)]
    return {score: output.with_name(f"{stem}.{score}{name[len(stem):]}") for score in scores}
