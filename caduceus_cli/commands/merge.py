"""`caduceus merge`: join the shard files of `caduceus embed --shard I/N` (HDF5), of
`caduceus score-variants --shard I/N` (VCF), of `caduceus track --shard I/N` (bigWig or
bedGraph) or of `caduceus calibrate --shard I/N` (background) into the one file a single run writes."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli import __version__
from caduceus_cli.commands.common import ForceOpt, LogFileOpt, QuietOpt, command_line
from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io.backgrounds import is_background, merge_backgrounds
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.hdf5 import merge_shards
from caduceus_cli.io.outputs import check_writable_output, claimed, committed
from caduceus_cli.io.tracks import TRACK_FORMATS, merge_tracks
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
_BIGWIG_SIGNATURE = b"\x26\xfc\x8f\x88"  # 0x888FFC26, little-endian
_GZIP_SIGNATURE = b"\x1f\x8b"  # bgzipped VCF and bedGraph, and BCF
_VCF_START, _BCF_START = b"##fileformat=VCF", b"BCF"


def merge(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Every shard file of one `embed`, `score-variants`, `track` or `calibrate --shard` run."),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Merged HDF5, bgzipped VCF (.vcf.gz, indexed), bigWig, bedGraph or background."
        ),
    ],
    csi: Annotated[
        bool, typer.Option("--csi", help="VCF shards: write a .csi index (default .tbi, .csi past 512 Mbp).")
    ] = False,
    fasta: Annotated[
        Path | None,
        typer.Option("--fasta", help="Track shards: the FASTA they were made from (contig sizes and order)."),
    ] = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Join shard files into what a single unsharded run writes: regions, records or track values in order."""
    setup_logging(quiet, log_file)
    check_writable_output(output, force)
    for path in inputs:
        if not path.is_file():
            raise InputError(f"{path}: shard file not found")
    kind = _kind(inputs[0])
    with claimed(output):
        if kind == "hdf5":
            provenance = {"tool_version": __version__, "command_line": command_line()}
            with committed(output) as tmp:
                merge_shards(inputs, tmp, provenance)
        elif kind in TRACK_FORMATS:
            _merge_tracks(inputs, output, kind, fasta)
        elif kind == "background":
            _merge_backgrounds(inputs, output)
        else:
            _merge_vcf([str(path) for path in inputs], output, csi)
    log.info("merged %d shards into %s", len(inputs), output)


def _kind(path: Path) -> str:
    """'hdf5', 'bigwig', 'bedgraph', 'background' or 'vcf' (VCF, VCF.gz or BCF), from the file's first bytes."""
    with open(path, "rb") as handle:
        start = handle.read(len(_VCF_START))
    if start.startswith(_HDF5_SIGNATURE):
        return "hdf5"
    if start[:4] == _BIGWIG_SIGNATURE:
        return "bigwig"
    if start[:2] == _GZIP_SIGNATURE:
        if is_background(path):
            return "background"
        with gzip.open(path, "rb") as text:
            start = text.read(len(_VCF_START))
    return "vcf" if start.startswith((_VCF_START, _BCF_START)) else "bedgraph"


def _merge_tracks(inputs: list[Path], output: Path, fmt: str, fasta: Path | None) -> None:
    """track shards (each a disjoint set of bases) into one track in FASTA order, as one run writes it."""
    if fasta is None:
        raise UsageError("track shards: give --fasta, the FASTA of the tracks (contig sizes and order)")
    # libBigWig and htslib print their own lines on a failed write; the error raised says it once
    with HtslibMessages(), Fasta(fasta) as reference:
        merge_tracks(inputs, output, reference.contigs, fmt)


def _merge_backgrounds(inputs: list[Path], output: Path) -> None:
    """calibrate shards in --shard order into the background a single run writes (gzipped, so .gz)."""
    if not output.name.lower().endswith(".gz"):
        raise UsageError(f"-o {output}: calibrate shards are joined into a gzipped background; name it .tsv.gz")
    count = merge_backgrounds(inputs, output, f"{command_line()} ({len(inputs)} shards, in --shard order)")
    log.info("%d variants from %d shards", count, len(inputs))


def _merge_vcf(inputs: list[str], output: Path, csi: bool) -> None:
    """score-variants shards in --shard order into one bgzipped, indexed VCF (records must be sorted)."""
    if output_format(str(output), None) != "z":
        raise UsageError(f"-o {output}: score-variants shards are joined into a bgzipped VCF; name it .vcf.gz")
    with HtslibMessages() as messages:
        ordered, header = shards_in_order(inputs, messages)
        header.add_meta("caduceus_merge", f"{command_line()} ({len(ordered)} shards, in --shard order)")
        with committed(output, companions=INDEX_SUFFIXES) as temporary:
            writer = VcfWriter(str(temporary), "z", header, messages, sorted_check=True)
            try:
                count = join_shards(ordered, writer, messages)
            except BaseException:
                writer.abandon()
                raise
            writer.close()
            csi = csi or needs_csi("z", list(declared_contigs(header).values()), writer.max_end)
            write_index(temporary, index_path(temporary, csi), csi)
    log.info("%d records from %d shards", count, len(ordered))
