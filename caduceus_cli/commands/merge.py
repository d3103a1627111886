"""`caduceus merge`: join the shard files of one `--shard I/N` run (`pipelines.merge`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli.commands.options import INPUT, OUTPUT, ForceOpt, LogFileOpt, QuietOpt
from caduceus_cli.commands.resolve import command_line
from caduceus_cli.io.outputs import check_writable_output
from caduceus_cli.pipelines.merge import MergeJob
from caduceus_cli.terminal import setup_logging


def merge(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            metavar="SHARD...", help="Every shard file of one `embed`, `score-variants`, `track` or `calibrate --shard` run."
        ),
    ],
    *,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="FILE",
            help="Merged HDF5, bgzipped VCF (.vcf.gz, indexed), bigWig, bedGraph or background.",
            rich_help_panel=OUTPUT,
        ),
    ],
    csi: Annotated[
        bool,
        typer.Option(
            "--csi", help="VCF shards: write a .csi index (default .tbi, .csi past 512 Mbp).", rich_help_panel=OUTPUT
        ),
    ] = False,
    fasta: Annotated[
        Path | None,
        typer.Option(
            "--fasta", metavar="FILE", help="Track shards: the FASTA they were made from (contig sizes and order).",
            rich_help_panel=INPUT,
        ),
    ] = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Join shard files into what a single unsharded run writes: regions, records or track values in order."""
    setup_logging(quiet, log_file)
    check_writable_output(output, force)
    MergeJob(inputs=inputs, output=output, csi=csi, fasta=fasta, command_line=command_line()).run()
