"""`caduceus embed`: per-base, binned or pooled embeddings of FASTA regions, into HDF5."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from caduceus_cli import __version__
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
    command_line,
    open_model,
    open_reference,
    parse_shard,
    set_threads,
    tiling,
)
from caduceus_cli.engine import Engine
from caduceus_cli.errors import InputError, OutputError, UsageError
from caduceus_cli.io.hdf5 import (
    COMPRESSIONS,
    COORDINATES,
    POOLS,
    PRECISIONS,
    EmbeddingFile,
    Layout,
    ShardInfo,
    partial_progress,
    regions_digest,
)
from caduceus_cli.io.outputs import check_writable_output, claimed, committed, failure_reason, partial_path
from caduceus_cli.io.regions import Region, input_regions
from caduceus_cli.model.caduceus import RC_MODES
from caduceus_cli.pipelines.embed import embed_regions
from caduceus_cli.terminal import setup_logging
from caduceus_cli.windows import region_shard

log = logging.getLogger("caduceus")

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([KMGT]?)I?B?", re.IGNORECASE)


# Choices as the model and the writer define them, so the options and what they set cannot drift apart.
RcMode = choices("RcMode", RC_MODES)
Pool = choices("Pool", POOLS)
Precision = choices("Precision", PRECISIONS)
Compression = choices("Compression", COMPRESSIONS)


def parse_size(text: str) -> int:
    """'50G' -> bytes; suffixes K, M, G, T are powers of 1024 (a trailing B or iB is allowed)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"--max-output-size {text}: expected a size such as 500M, 50G or 2T")
    number, suffix = match.groups()
    return int(float(number) * 1024 ** " KMGT".index(suffix.upper() or " "))


def embed(
    fasta: FastaArg,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="HDF5 file to write (required: HDF5 cannot be streamed to stdout)."
        ),
    ],
    regions_bed: Annotated[
        Path | None,
        typer.Option("--regions", "-R", help="BED file of regions (0-based; name and strand columns used)."),
    ] = None,
    region: RegionOpt = None,
    chrom_map: ChromMapOpt = None,
    window: TileWindowOpt = None,
    overlap: OverlapOpt = None,
    rc: Annotated[
        RcMode,
        typer.Option(
            "--rc",
            help="Reverse-complement handling: auto (PH: forward and RC passes averaged; PS: one pass), "
            "none (forward strand only), average (two passes for either).",
        ),
    ] = RcMode["auto"],
    precision: Annotated[
        Precision, typer.Option("--precision", help="Stored float type of embeddings.")
    ] = Precision["float16"],
    pool: Annotated[
        Pool | None, typer.Option("--pool", help="Add /pooled: the mean over each region.")
    ] = None,
    bin_size: Annotated[
        int | None, typer.Option("--bin", min=1, help="Add /binned/<i>: means over K-base bins.")
    ] = None,
    no_per_base: Annotated[
        bool, typer.Option("--no-per-base", help="Leave out /embeddings (with --pool or --bin).")
    ] = False,
    record_soft_mask: Annotated[
        bool, typer.Option("--soft-mask", help="Add /soft_mask/<i>: 1 where the reference base is lowercase.")
    ] = False,
    max_output_size: Annotated[
        str,
        typer.Option(
            "--max-output-size", help="Refuse to start if the estimated output is larger (K/M/G/T)."
        ),
    ] = "50G",
    compression: Annotated[
        Compression,
        typer.Option(
            "--compression", help="Codec for embeddings: none (fastest), gzip, bitshuffle (hdf5plugin)."
        ),
    ] = Compression["none"],
    batch_size: BatchSizeOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its partial file.")
    ] = False,
    force: ForceOpt = False,
    shard: ShardOpt = None,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Embed FASTA regions (all contigs by default) with a Caduceus model into an HDF5 file."""
    setup_logging(quiet, log_file)
    if str(output) == "-":
        raise UsageError("-o -: HDF5 cannot be written to stdout; give a file name")
    set_threads(threads)
    shard_part = parse_shard(shard)
    max_bytes = parse_size(max_output_size)
    if no_per_base and pool is None and bin_size is None:
        raise UsageError("--no-per-base: nothing would be written; add --pool mean or --bin K")
    check_writable_output(output, force)
    tmp = partial_path(output)
    # claimed before anything is read or deleted: a second run on this output refuses at once
    with claimed(output), open_reference(fasta, chrom_map) as reference:
        if resume and not tmp.exists():
            raise InputError(f"{tmp}: no partial file to resume; run without --resume")
        regions = input_regions(reference, regions_bed, region or [])
        model_obj = open_model(model, revision, device, dtype)
        window, overlap = tiling(model_obj, window, overlap)
        layout = Layout(
            d=model_obj.config.d_model,
            precision=precision.value,
            per_base=not no_per_base,
            pool=pool is not None,
            bin=bin_size or 0,
            soft_mask=record_soft_mask,
            compression=compression.value,
        )
        shard_info = _shard_info(shard_part, regions)
        selected = regions if shard_info is None else [regions[i] for i in shard_info.rows]
        _check_size(layout, selected, max_bytes)
        settings = _settings(model_obj, rc.value, window, overlap, fasta, regions)
        provenance = {"tool_version": __version__, "command_line": command_line()}
        engine = Engine(model_obj, batch_size=batch_size)
        # A resume is checked before committed() takes charge of the partial file, so a refused
        # resume (other model or settings) leaves the interrupted run's work in place.
        out = EmbeddingFile.resume(tmp, selected, layout, settings, shard_info) if resume else None
        if out is None and tmp.exists():
            log.warning(
                "%s: starting over, discarding an interrupted run's partial file (%s); "
                "--resume continues from it instead",
                tmp,
                _progress_text(tmp),
            )
        with committed(output, resumable=True):
            if out is None:
                out = EmbeddingFile.create(tmp, selected, layout, settings, provenance, shard_info)
            try:
                embed_regions(engine, reference, selected, out, window, overlap, rc.value, quiet)
                out.finish()
            except KeyboardInterrupt:
                out.close()  # commits the finished regions, so the count below is what --resume skips
                raise KeyboardInterrupt(
                    f"{_progress_text(tmp)} saved in {tmp}; rerun the same command with --resume to continue"
                ) from None
            except OSError as error:
                with contextlib.suppress(OSError, RuntimeError):  # the write's error is the one to report
                    out.close()  # commits the finished regions, unless the failed write broke the file
                raise OutputError(f"{output}: cannot write: {failure_reason(error, tmp)}; {_saved(tmp)}") from None
            finally:
                out.close()
    log.info("wrote %s", output)


def _saved(partial: Path) -> str:
    """What a run stopped by a write error leaves, and what to do next."""
    if partial_progress(partial) is None:
        return f"{partial} cannot be resumed; make room and run again without --resume"
    return f"{_progress_text(partial)} saved in {partial}; make room and rerun the same command with --resume"


def _progress_text(partial: Path) -> str:
    """'N of M regions done' for an interrupted run's partial file."""
    progress = partial_progress(partial)
    if progress is None:
        return "unreadable, regions done unknown"
    return f"{progress[0]} of {progress[1]} regions done"


def _settings(model, rc: str, window: int, overlap: int, fasta: Path, regions: Sequence[Region]) -> dict:
    """What determines the output values: stored as root attributes, checked on resume and merge."""
    return {
        "model_source": model.provenance["source"] or "",
        "model_revision": model.provenance["revision"],
        "model_sha256": model.provenance["sha256"] or "",
        "model_variant": model.variant,
        "rc": rc,
        "window": window,
        "overlap": overlap,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "reference": str(fasta),
        "regions_sha256": regions_digest(regions),
        "coordinates": COORDINATES,
    }


def _shard_info(part: tuple[int, int] | None, regions: Sequence[Region]) -> ShardInfo | None:
    if part is None:
        return None
    index, count = part
    rows = region_shard(regions, index, count)
    return ShardInfo(index, count, len(regions), np.array(rows, dtype=np.int64))


def _check_size(layout: Layout, regions: Sequence[Region], max_bytes: int) -> None:
    lengths = [r.end - r.start for r in regions]
    estimate = layout.estimate_bytes(lengths)
    log.info(
        "%d regions, %d bases, estimated output %s uncompressed", len(regions), sum(lengths), _human(estimate)
    )
    if estimate > max_bytes:
        raise InputError(
            f"estimated output {_human(estimate)} exceeds --max-output-size {_human(max_bytes)}; store less "
            "with --bin K and/or --pool mean (with --no-per-base), or raise --max-output-size"
        )


def _human(size: float) -> str:
    """Bytes in the units --max-output-size takes: 1536 -> '1.5K'."""
    for unit in "BKMG":
        if size < 1024:
            return f"{size:.1f}{unit}" if unit != "B" else f"{size:.0f}B"
        size /= 1024
    return f"{size:.1f}T"
