"""What the HDF5 file of `caduceus embed` holds: its datasets, region columns and attributes.

Layout (downstream code relies on it; documented in docs/commands/embed.md):

    /regions/{chrom,name,strand}   UTF-8 strings, one row per region, in input order
    /regions/{start,end}           int64, 0-based half-open contig coordinates
    /embeddings/<i>                (end - start, d) per-base values of region i, 5'->3' on its strand
    /binned/<i>                    (ceil(len / K), d) means over K-base bins (with --bin K)
    /pooled                        (n_regions, d) mean over each region (with --pool mean)
    /soft_mask/<i>                 (end - start,) uint8, 1 where the reference base is lowercase
    root attributes                settings (verified on resume and merge) and provenance

Two more objects exist only while a file is unfinished or is one shard of a split run:
`/done` (uint8 per region, set for finished regions at each commit, after their data is flushed,
so `--resume` can skip them; deleted when the run completes) and `/shard/index` (the global region index of each row,
with root attributes `shard_index`, `shard_count`, `total_regions`; `pipelines.merge.hdf5` drops them).

Bytes are deterministic: no timestamps (track_times=False), groups keep creation order, fixed
chunk shapes, and each per-region dataset is written in whole chunks in row order (`chunks`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import h5py
import numpy as np

from caduceus_cli.errors import UsageError
from caduceus_cli.extras import require

CHUNK_ROWS = 2048  # 1 MiB per chunk at d = 256 in float16: large enough for codecs, small for partial reads
REGION_ROW_BYTES = 64  # room one /regions row takes, with its names, in a new file
TEXT_COLUMNS, COORDINATE_COLUMNS = ("chrom", "name", "strand"), ("start", "end")  # the datasets of /regions
PER_REGION_GROUPS = ("embeddings", "binned", "soft_mask")  # groups of one dataset per region, named by row
COORDINATES = "0-based half-open contig coordinates; rows run 5'->3' on the region's strand"
PROVENANCE_ATTRS = ("tool_version", "command_line", "shard_command_lines")
SHARD_ATTRS = ("shard_index", "shard_count", "total_regions")
POOLS = ("mean",)  # --pool: how /pooled summarises a region
COMPRESSIONS = ("none", "gzip", "bitshuffle")
PRECISIONS = {"float16": np.float16, "float32": np.float32}
_STR = h5py.string_dtype("utf-8")


class RegionLike(Protocol):
    chrom: str
    start: int
    end: int
    name: str
    strand: str


def compression_filters(name: str) -> dict:
    """create_dataset keywords for a --compression choice (see the codec table in docs/commands/embed.md).

    `none` is the default because per-base embeddings are close to incompressible (byte-shuffled
    gzip saves under 20%) while gzip writes about 30 MB/s per core, far below what a GPU produces.
    `bitshuffle` (LZ4) is fast and saves about as much as gzip, but every reader then needs
    `import hdf5plugin` before h5py can decode it.
    """
    if name == "none":
        return {}
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if name == "bitshuffle":
        hdf5plugin = require("hdf5plugin", "--compression bitshuffle (and every program that reads the file)",
                             "or use --compression gzip")  # fmt: skip
        return dict(hdf5plugin.Bitshuffle(cname="lz4"))
    raise UsageError(f"--compression {name}: use one of {', '.join(COMPRESSIONS)}")


@dataclass(frozen=True)
class Layout:
    """What the file holds besides /regions: which datasets, their dtype and codec."""

    d: int
    precision: str = "float16"
    per_base: bool = True
    pool: bool = False
    bin: int = 0  # bin size in bases; 0 = no /binned
    soft_mask: bool = False
    compression: str = "none"

    def attrs(self) -> dict[str, object]:
        return {
            "d_model": self.d,
            "precision": self.precision,
            "per_base": self.per_base,
            "pool": "mean" if self.pool else "none",
            "bin": self.bin,
            "soft_mask": self.soft_mask,
            "compression": self.compression,
        }

    def estimate_bytes(self, lengths: Sequence[int]) -> int:
        """Uncompressed size of the values this layout stores for regions of these lengths."""
        row = self.d * np.dtype(PRECISIONS[self.precision]).itemsize
        size = 0
        if self.per_base:
            size += sum(lengths) * row
        if self.bin:
            size += sum(math.ceil(n / self.bin) for n in lengths) * row
        if self.pool:
            size += len(lengths) * row
        if self.soft_mask:
            size += sum(lengths)
        return size


@dataclass(frozen=True)
class ShardInfo:
    """This file holds part `index` (0-based) of `count`: rows `rows` of `total` regions."""

    index: int
    count: int
    total: int
    rows: np.ndarray


def plain(value: object) -> object:
    """An attribute value as plain Python, so settings read back compare equal to those written."""
    if isinstance(value, np.generic):
        value = value.item()
    return value.decode() if isinstance(value, bytes) else value


def stored_settings(h5: h5py.File) -> dict[str, object]:
    """The root attributes that determine the values (model, options, regions), without provenance
    and shard identity: what a resume and a merge compare."""
    skip = (*PROVENANCE_ATTRS, *SHARD_ATTRS)
    return {key: plain(value) for key, value in h5.attrs.items() if key not in skip}


def write_regions(h5: h5py.File, columns: Mapping[str, Sequence]) -> None:
    """/regions from one list per column (`region_columns`)."""
    group = h5.create_group("regions", track_order=True)
    for key in TEXT_COLUMNS:
        group.create_dataset(key, data=np.array(columns[key], dtype=object), dtype=_STR, track_times=False)
    for key in COORDINATE_COLUMNS:
        group.create_dataset(key, data=np.asarray(columns[key], dtype=np.int64), track_times=False)


def read_regions(h5: h5py.File) -> dict[str, list]:
    """/regions as one list per column, as `region_columns` gives them."""
    group = h5["regions"]
    columns = {key: [s.decode() for s in group[key][()]] for key in TEXT_COLUMNS}
    columns.update({key: group[key][()].tolist() for key in COORDINATE_COLUMNS})
    return columns


def region_columns(regions: Sequence[RegionLike]) -> dict[str, list]:
    """The regions as one list per /regions column."""
    return {key: [getattr(r, key) for r in regions] for key in (*TEXT_COLUMNS, *COORDINATE_COLUMNS)}


def regions_digest(regions: Sequence[RegionLike]) -> str:
    """sha256 of the whole region list: a setting, so shards of different region lists never merge."""
    digest = hashlib.sha256()
    for r in regions:
        digest.update(f"{r.chrom}\t{r.start}\t{r.end}\t{r.strand}\t{r.name}\n".encode())
    return digest.hexdigest()
