"""`merge`: the shard files of one `--shard I/N` run joined into the file a single run writes.

Every kind of shard is joined here: `embed` (HDF5), `score-variants` (VCF), `track` (bigWig or
bedGraph) and `calibrate` (background). Each shard names its place as data (HDF5's shard
attributes, `##caduceus_shard=I/N` in a VCF, `#shard=I/N` in a background; tracks are disjoint sets
of bases), so shards are ordered and checked from what they hold, not from how they were made.
Joining imports no model code: a merge job on a login node starts in a fraction of a second.
"""

from __future__ import annotations

import gzip
import heapq
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pysam

from caduceus_cli import __version__
from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io.backgrounds import is_background, merge_backgrounds
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.hdf5 import merge_shards
from caduceus_cli.io.inputs import check_input
from caduceus_cli.io.outputs import claimed, committed
from caduceus_cli.io.tracks import TRACK_FORMATS, ChromSizes, read_track, track_format, track_writer
from caduceus_cli.io.vcf import (
    COMMAND_KEY,
    MERGE_KEY,
    SHARD_KEY,
    HtslibMessages,
    VcfWriter,
    open_vcf,
    output_format,
    records,
    vcf_output,
)
from caduceus_cli.terminal import counted
from caduceus_cli.windows import shard_order

log = logging.getLogger("caduceus")


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_BIGWIG_SIGNATURE = b"\x26\xfc\x8f\x88"  # 0x888FFC26, little-endian
_GZIP_SIGNATURE = b"\x1f\x8b"  # bgzipped VCF and bedGraph, BCF, gzipped backgrounds
_VCF_START, _BCF_START = b"##fileformat=VCF", b"BCF"
_BEDGRAPH_LINE = re.compile(rb"[^\t\n]+\t[0-9]+\t[0-9]+\t[^\t\n]+\n")  # chrom start end value: a track shard
_FIRST_LINE = 1024  # bytes read to tell the kind of a shard


@dataclass(frozen=True, kw_only=True)
class MergeJob:
    """Join `inputs`, every shard of one run, into `output`: `csi` asks for a .csi index of VCF shards,
    `fasta` gives track shards their contig sizes and order; `command_line` is recorded as provenance."""

    inputs: Sequence[Path]
    output: Path
    csi: bool = False
    fasta: Path | None = None
    command_line: str = field(default="", compare=False)

    def run(self) -> str:
        """Write the merged file (claimed, under a temporary name); return the kind of shards joined."""
        for path in self.inputs:
            check_input(path, "shard file", "merge reads a shard more than once")
        kind = shard_kind(self.inputs[0])
        with claimed(self.output):
            if kind == "hdf5":
                with committed(self.output) as temporary:
                    merge_shards(self.inputs, temporary, {"tool_version": __version__, "command_line": self.command_line})
            elif kind in TRACK_FORMATS:
                self._tracks(kind)
            elif kind == "background":
                self._backgrounds()
            else:
                self._vcf()
        log.info("merged %s into %s", counted(len(self.inputs), "shard"), self.output)
        return kind

    def _tracks(self, fmt: str) -> None:
        """Track shards (each a disjoint set of bases) into one track in FASTA order, as one run writes it."""
        if self.fasta is None:
            raise UsageError("track shards: give --fasta, the FASTA of the tracks (contig sizes and order)")
        track_format(self.output, fmt, "the shards are")
        # libBigWig and htslib print their own lines on a failed write; the error raised says it once
        with HtslibMessages(), Fasta(self.fasta) as reference:
            merge_tracks(self.inputs, self.output, reference.contigs, fmt)

    def _backgrounds(self) -> None:
        """calibrate shards in --shard order into the background a single run writes (gzipped, so .gz)."""
        if not self.output.name.lower().endswith(".gz"):
            raise UsageError(
                f"-o {self.output}: calibrate shards are joined into a gzipped background; name it .tsv.gz"
            )
        command = f"{self.command_line} ({len(self.inputs)} shards, in --shard order)"
        count = merge_backgrounds(self.inputs, self.output, command)
        log.info("%s from %s", counted(count, "variant"), counted(len(self.inputs), "shard"))

    def _vcf(self) -> None:
        """score-variants shards in --shard order into one bgzipped, indexed VCF (records must be sorted)."""
        if output_format(str(self.output), None) != "z":
            raise UsageError(
                f"-o {self.output}: score-variants shards are joined into a bgzipped VCF; name it .vcf.gz"
            )
        with HtslibMessages() as messages:
            ordered, header = vcf_shards_in_order([str(path) for path in self.inputs], messages)
            header.add_meta(MERGE_KEY, f"{self.command_line} ({len(ordered)} shards, in --shard order)")
            with vcf_output(self.output, "z", header, messages, index=True, csi=self.csi) as writer:
                count = join_vcf_shards(ordered, writer, messages)
        log.info("%s from %s", counted(count, "record"), counted(len(ordered), "shard"))


def merge_tracks(shards: Sequence[Path], path: Path, chrom_sizes: ChromSizes, fmt: str) -> None:
    """Join the track shards of one sharded run (disjoint bases each, any split) into `path`.

    Values are merged in FASTA order and written by the same writer, so the file holds exactly
    what an unsharded run writes; shards that overlap are an error (the writer's order check).
    """
    rank = {chrom: rank for rank, chrom in enumerate(chrom_sizes)}
    streams = [read_track(shard, chrom_sizes, fmt) for shard in shards]
    with track_writer(path, chrom_sizes, fmt) as writer:
        for chrom, start, values in heapq.merge(*streams, key=lambda s: (rank.get(s[0], -1), s[1])):
            writer.add(chrom, start, values)


def shard_kind(path: Path) -> str:
    """'hdf5', 'bigwig', 'bedgraph', 'background' or 'vcf' (VCF, VCF.gz or BCF), from the file's first bytes;
    any other file (a FASTA given by mistake) is an InputError naming it."""
    with open(path, "rb") as handle:
        start = handle.read(_FIRST_LINE)
    if start.startswith(_HDF5_SIGNATURE):
        return "hdf5"
    if start[:4] == _BIGWIG_SIGNATURE:
        return "bigwig"
    compressed = start[:2] == _GZIP_SIGNATURE
    if compressed:
        if is_background(path):
            return "background"
        with gzip.open(path, "rb") as text:
            start = text.read(_FIRST_LINE)
    if start.startswith((_VCF_START, _BCF_START)):
        return "vcf"
    if compressed and (not start or _BEDGRAPH_LINE.match(start)):  # an empty shard has no line
        return "bedgraph"
    raise InputError(
        f"{path}: not a shard of caduceus embed, score-variants, track or calibrate "
        "(merge joins the outputs of one --shard I/N run)"
    )


def vcf_shards_in_order(paths: Sequence[str], messages: HtslibMessages) -> tuple[list[str], pysam.VariantHeader]:
    """The shard files in --shard order (from each `##caduceus_shard`) and the single run's header.

    Shards are contiguous runs of records, so in this order their records are the single run's.
    A missing or repeated shard, shards of different splits, and a header that differs from the
    first shard's (other than the command and shard lines: another model, window or score set) are
    errors. The header returned is the first shard's without its shard line.
    """
    headers = {}
    for path in paths:
        with open_vcf(path, messages) as vcf:
            headers[path] = vcf.header.copy()
    ordered = [paths[position] for position in shard_order([(path, *_vcf_shard(path, headers[path])) for path in paths])]
    expected = _compared_lines(headers[ordered[0]])
    for path in ordered[1:]:
        got = _compared_lines(headers[path])
        for want, line in zip(expected, got, strict=False):
            if want != line:
                raise InputError(f"{path}: header line {line!r} differs from {ordered[0]} ({want!r})")
        if len(got) != len(expected):
            raise InputError(f"{path}: header has a different number of lines than {ordered[0]}")
    header = headers[ordered[0]]
    for line in [line for line in header.records if line.key == SHARD_KEY]:
        line.remove()
    return ordered, header


def join_vcf_shards(ordered: Sequence[str], writer: VcfWriter, messages: HtslibMessages) -> int:
    """Write the records of the shards, in the order given; return how many."""
    count = 0
    for path in ordered:
        with open_vcf(path, messages) as vcf:
            for record in records(vcf, path, messages):
                writer.write(record)
                count += 1
    return count


def _vcf_shard(path: str, header: pysam.VariantHeader) -> tuple[int, int]:
    """(I, N) of the file's ##caduceus_shard line."""
    for line in header.records:
        if line.key == SHARD_KEY:
            index, slash, count = line.value.partition("/")
            if slash and index.isdigit() and count.isdigit():
                return int(index), int(count)
    raise InputError(f"{path}: no ##{SHARD_KEY}=I/N line; not a score-variants --shard output")


def _compared_lines(header: pysam.VariantHeader) -> list[str]:
    skipped = (f"##{COMMAND_KEY}=", f"##{SHARD_KEY}=")
    return [line for line in str(header).splitlines() if not line.startswith(skipped)]
