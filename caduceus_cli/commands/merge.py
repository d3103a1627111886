"""`caduceus merge`: join the shard files of `caduceus embed --shard I/N` into one file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli import __version__
from caduceus_cli.commands.common import ForceOpt, LogFileOpt, QuietOpt, command_line
from caduceus_cli.errors import InputError
from caduceus_cli.io.hdf5 import merge_shards
from caduceus_cli.io.outputs import check_writable_output, committed
from caduceus_cli.terminal import setup_logging

log = logging.getLogger("caduceus")


def merge(
    inputs: Annotated[
        list[Path], typer.Argument(help="Every shard file of one `caduceus embed --shard` run.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Merged HDF5 file to write.")],
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Join embed shard files into the layout a single unsharded run writes, regions in input order."""
    setup_logging(quiet, log_file)
    check_writable_output(output, force)
    for path in inputs:
        if not path.is_file():
            raise InputError(f"{path}: shard file not found")
    provenance = {"tool_version": __version__, "command_line": command_line()}
    with committed(output) as tmp:
        merge_shards(inputs, tmp, provenance)
    log.info("merged %d shards into %s", len(inputs), output)
