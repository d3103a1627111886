"""`caduceus track`: per-base score tracks (bigWig or bgzipped bedGraph) of FASTA regions."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli.commands.common import (
    BatchSizeOpt,
    ChromMapOpt,
    DeviceOpt,
    DtypeOpt,
    FastaArg,
    ForceOpt,
    LogFileOpt,
    ModelOpt,
    OverlapOpt,
    QuietOpt,
    RegionOpt,
    RevisionOpt,
    ShardOpt,
    ThreadsOpt,
    TileWindowOpt,
    choices,
    open_model,
    open_reference,
    parse_shard,
    set_threads,
    tiling,
)
from caduceus_cli.engine import Engine
from caduceus_cli.errors import UsageError
from caduceus_cli.io.htslib import HtslibMessages
from caduceus_cli.io.outputs import check_writable_output, claimed
from caduceus_cli.io.regions import input_regions
from caduceus_cli.io.tracks import TRACK_FORMATS, track_writer
from caduceus_cli.pipelines.track import genome_order, track_regions
from caduceus_cli.scoring import TRACK_SCORES
from caduceus_cli.terminal import setup_logging
from caduceus_cli.windows import region_shard

log = logging.getLogger("caduceus")

Score = choices("Score", TRACK_SCORES)
Format = choices("Format", TRACK_FORMATS)
DEFAULT_SCORE = "llr-min"


def track(
    fasta: FastaArg,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Track (.bw, or .bedgraph.gz); OUT.<score>.bw for several scores."
        ),
    ],
    regions_bed: Annotated[
        Path | None, typer.Option("--regions", "-R", help="BED file of regions (0-based; must not overlap).")
    ] = None,
    region: RegionOpt = None,
    score: Annotated[
        list[Score] | None,
        typer.Option("--score", "-s", help=f"Score to write; repeat for several. Default: {DEFAULT_SCORE}."),
    ] = None,
    fmt: Annotated[
        Format | None,
        typer.Option("--format", help="bigwig or bedgraph (bgzipped). Default: bedgraph if -o ends in .gz."),
    ] = None,
    chrom_map: ChromMapOpt = None,
    window: TileWindowOpt = None,
    overlap: OverlapOpt = None,
    shard: ShardOpt = None,
    batch_size: BatchSizeOpt = None,
    force: ForceOpt = False,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Write per-base model scores of FASTA regions (all contigs by default) as bigWig or bedGraph tracks."""
    # libBigWig and htslib print their own lines on a failed write; the error raised says it once
    with HtslibMessages():
        setup_logging(quiet, log_file)
        if str(output) == "-":
            raise UsageError("-o -: a track is written to a file (bigWig cannot be streamed); give a file name")
        set_threads(threads)
        shard_part = parse_shard(shard)
        scores = tuple(dict.fromkeys(s.value for s in score)) if score else (DEFAULT_SCORE,)
        track_format = fmt.value if fmt else ("bedgraph" if output.name.lower().endswith(".gz") else "bigwig")
        paths = output_paths(output, scores)
        for path in paths.values():
            check_writable_output(path, force)
        with claimed(*paths.values()), open_reference(fasta, chrom_map) as reference:
            regions = genome_order(input_regions(reference, regions_bed, region or []), reference.contigs)
            if shard_part is not None:
                index, count = shard_part
                regions = [regions[i] for i in region_shard(regions, index, count)]
            model_obj = open_model(model, revision, device, dtype)
            window, overlap = tiling(model_obj, window, overlap)
            engine = Engine(model_obj, batch_size=batch_size)
            with contextlib.ExitStack() as outputs:
                writers = {
                    name: outputs.enter_context(track_writer(path, reference.contigs, track_format))
                    for name, path in paths.items()
                }
                track_regions(engine, reference, regions, writers, window, overlap, quiet)
        log.info("wrote %s", ", ".join(map(str, paths.values())))


_SUFFIXES = (".bedgraph.gz", ".bg.gz", ".bw", ".bigwig", ".gz")


def output_paths(output: Path, scores: Sequence[str]) -> dict[str, Path]:
    """The file of each score: `output` for one score; for several OUT.<score>.bw (score before suffix)."""
    if len(scores) == 1:
        return {scores[0]: output}
    name = output.name
    suffix = next((s for s in _SUFFIXES if name.lower().endswith(s)), "")
    stem = name[: len(name) - len(suffix)]
    return {score: output.with_name(f"{stem}.{score}{name[len(stem):]}") for score in scores}
