"""`caduceus embed`: per-base, binned or pooled embeddings of FASTA regions, into HDF5 (`pipelines.embed`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli.commands.inputs import tiled_input
from caduceus_cli.commands.options import (
    INPUT,
    OUTPUT,
    WINDOWS,
    ChromMapOpt,
    FastaArg,
    ForceOpt,
    OverlapOpt,
    RegionOpt,
    ShardOpt,
    TileWindowOpt,
    choices,
)
from caduceus_cli.commands.resolve import command_line
from caduceus_cli.commands.runtime import Runtime, runtime_options
from caduceus_cli.errors import UsageError
from caduceus_cli.io.hdf5.layout import COMPRESSIONS, POOLS, PRECISIONS, Layout, compression_filters
from caduceus_cli.io.outputs import check_writable_output
from caduceus_cli.model.caduceus import RC_MODES
from caduceus_cli.pipelines.embed import EmbedJob

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


@runtime_options
def embed(
    fasta: FastaArg,
    *,
    regions_bed: Annotated[
        Path | None,
        typer.Option(
            "--regions", "-R", metavar="BED", help="BED file of regions (0-based; name and strand columns used).",
            rich_help_panel=INPUT,
        ),
    ] = None,
    region: RegionOpt = None,
    chrom_map: ChromMapOpt = None,
    shard: ShardOpt = None,
    window: TileWindowOpt = None,
    overlap: OverlapOpt = None,
    rc: Annotated[
        RcMode,
        typer.Option(
            "--rc",
            metavar="MODE",
            help="Reverse-complement handling: auto (PH: forward and RC passes averaged; PS: one pass), "
            "none (forward strand only), average (two passes for either).",
            rich_help_panel=WINDOWS,
        ),
    ] = RcMode["auto"],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="FILE", help="HDF5 file to write (required: HDF5 cannot be streamed to stdout).",
            rich_help_panel=OUTPUT,
        ),
    ],
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision", metavar="TYPE", help=f"Stored float type of embeddings: {' or '.join(PRECISIONS)}.",
            rich_help_panel=OUTPUT,
        ),
    ] = Precision["float16"],
    pool: Annotated[
        Pool | None,
        typer.Option(
            "--pool", metavar="|".join(POOLS), help="Add /pooled: the mean over each region.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    bin_size: Annotated[
        int | None,
        typer.Option(
            "--bin", min=1, metavar="K", help="Add /binned/<i>: means over K-base bins.", rich_help_panel=OUTPUT
        ),
    ] = None,
    no_per_base: Annotated[
        bool,
        typer.Option("--no-per-base", help="Leave out /embeddings (with --pool or --bin).", rich_help_panel=OUTPUT),
    ] = False,
    record_soft_mask: Annotated[
        bool,
        typer.Option(
            "--soft-mask", help="Add /soft_mask/<i>: 1 where the reference base is lowercase.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    max_output_size: Annotated[
        str,
        typer.Option(
            "--max-output-size", metavar="SIZE", help="Refuse to start if the estimated output is larger (K/M/G/T).",
            rich_help_panel=OUTPUT,
        ),
    ] = "50G",
    compression: Annotated[
        Compression,
        typer.Option(
            "--compression", metavar="CODEC", help="Codec for embeddings: none (fastest), gzip, bitshuffle (hdf5plugin).",
            rich_help_panel=OUTPUT,
        ),
    ] = Compression["none"],
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue an interrupted run from its partial file.", rich_help_panel=OUTPUT),
    ] = False,
    force: ForceOpt = False,
    runtime: Runtime,
) -> None:
    """Embed FASTA regions (all contigs by default) with a Caduceus model into an HDF5 file."""
    if str(output) == "-":
        raise UsageError("-o -: HDF5 cannot be written to stdout; give a file name")
    max_bytes = parse_size(max_output_size)
    if no_per_base and pool is None and bin_size is None:
        raise UsageError("--no-per-base: nothing would be written; add --pool mean or --bin K")
    compression_filters(compression.value)  # the codec's package, before any work
    check_writable_output(output, force)
    with tiled_input(
        fasta, runtime, regions_bed=regions_bed, region=region, chrom_map=chrom_map, window=window,
        overlap=overlap, shard=shard, outputs=[output],
    ) as tiled:  # fmt: skip
        model = runtime.load_model()
        layout = Layout(
            d=model.config.d_model,
            precision=precision.value,
            per_base=not no_per_base,
            pool=pool is not None,
            bin=bin_size or 0,
            soft_mask=record_soft_mask,
            compression=compression.value,
        )
        job = EmbedJob(
            output=output, fasta=fasta, regions=tiled.regions, layout=layout, window=tiled.window,
            overlap=tiled.overlap, rc=rc.value, shard=tiled.shard, resume=resume, max_bytes=max_bytes,
            command_line=command_line(),
        )  # fmt: skip
        job.run(runtime.engine(model), tiled.reference, runtime.quiet)
