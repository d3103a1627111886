"""`merge`: the shard files of one `--shard I/N` run joined into the file a single run writes.

Every kind of shard is joined here, one module per kind: `embed` (hdf5.py), `score-variants`
(vcf.py), `track` (tracks.py: bigWig or bedGraph) and `calibrate` (backgrounds.py). Each shard names
its place as data (HDF5's shard attributes, `##caduceus_shard=I/N` in a VCF, `#caduceus_shard=I/N`
in a background; tracks are disjoint sets of bases), so shards are ordered and checked from what
they hold, not from how they were made. `MergeJob` tells the kind from the first shard's bytes.
Joining imports no model code: a merge job on a login node starts in a fraction of a second.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from caduceus_cli import __version__
from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io.backgrounds import is_background
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.inputs import check_input
from caduceus_cli.io.outputs import claimed, committed
from caduceus_cli.io.tracks import TRACK_FORMATS, track_format
from caduceus_cli.io.vcf import MERGE_KEY, HtslibMessages, output_format, vcf_output
from caduceus_cli.pipelines.merge.backgrounds import merge_backgrounds
from caduceus_cli.pipelines.merge.hdf5 import merge_embeddings
from caduceus_cli.pipelines.merge.tracks import merge_tracks
from caduceus_cli.pipelines.merge.vcf import join_vcf_shards, vcf_shards_in_order
from caduceus_cli.terminal import counted

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
                self._embeddings()
            elif kind in TRACK_FORMATS:
                self._tracks(kind)
            elif kind == "background":
                self._backgrounds()
            else:
                self._vcf()
        log.info("merged %s into %s", counted(len(self.inputs), "shard"), self.output)
        return kind

    def _embeddings(self) -> None:
        """embed shards into the file a single run writes, this merge's command line its provenance."""
        with committed(self.output) as temporary:
            merge_embeddings(self.inputs, temporary, {"tool_version": __version__, "command_line": self.command_line})

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
