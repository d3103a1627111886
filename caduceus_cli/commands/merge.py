"""`caduceus merge`: join the shard files of `caduceus embed --shard I/N` (HDF5) or of
`caduceus score-variants --shard I/N` (VCF) into the one file a single run writes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli import __version__
from caduceus_cli.commands.common import ForceOpt, LogFileOpt, QuietOpt, command_line
from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io.hdf5 import merge_shards
from caduceus_cli.io.outputs import check_writable_output, committed
from caduceus_cli.io.vcf import (
    INDEX_SUFFIXES,
    HtslibMessages,
    VcfWriter,
    declared_contigs,
    index_path,
    needs_csi,
    output_format,
    write_index,
)
from caduceus_cli.pipelines.variants import join_shards, shards_in_order
from caduceus_cli.terminal import setup_logging

log = logging.getLogger("caduceus")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def merge(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Every shard file of one `caduceus embed --shard` or `score-variants --shard` run."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Merged HDF5, or bgzipped VCF (.vcf.gz, indexed), to write.")
    ],
    csi: Annotated[
        bool, typer.Option("--csi", help="VCF shards: write a .csi index (default .tbi, .csi past 512 Mbp).")
    ] = False,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Join shard files into what a single unsharded run writes: regions or records in input order."""
    setup_logging(quiet, log_file)
    check_writable_output(output, force)
    for path in inputs:
        if not path.is_file():
            raise InputError(f"{path}: shard file not found")
    if _is_hdf5(inputs[0]):
        provenance = {"tool_version": __version__, "command_line": command_line()}
        with committed(output) as tmp:
            merge_shards(inputs, tmp, provenance)
    else:
        _merge_vcf([str(path) for path in inputs], output, csi)
    log.info("merged %d shards into %s", len(inputs), output)


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE


def _merge_vcf(inputs: list[str], output: Path, csi: bool) -> None:
    """score-variants shards in --shard order into one bgzipped, indexed VCF (records must be sorted)."""
    if output_format(str(output), None) != "z":
        raise UsageError(f"-o {output}: score-variants shards are joined into a bgzipped VCF; name it .vcf.gz")
    with HtslibMessages() as messages:
        ordered, header = shards_in_order(inputs, messages)
        header.add_meta("caduceus_merge", f"{command_line()} ({len(ordered)} shards, in --shard order)")
        with committed(output, companions=INDEX_SUFFIXES) as temporary:
            writer = VcfWriter(str(temporary), "z", header, messages, sorted_check=True)
            count = join_shards(ordered, writer, messages)
            writer.close()
            csi = csi or needs_csi("z", list(declared_contigs(header).values()), writer.max_end)
            write_index(temporary, index_path(temporary, csi), csi)
    log.info("%d records from %d shards", count, len(ordered))
