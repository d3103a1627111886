"""The HDF5 file `caduceus embed` writes, resumes and `caduceus merge` joins.

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
with root attributes `shard_index`, `shard_count`, `total_regions`; `merge_shards` drops them).

Bytes are deterministic: no timestamps (track_times=False), groups keep creation order, fixed
chunk shapes, and each per-region dataset is written in whole chunks in row order.

A full disk: HDF5 crashes (a segmentation fault) closing a file after a failed write, and what a
failed flush leaves on disk may not open again. So the writer checks for room before each write
(`outputs.ensure_space`), keeping enough free to flush and close: a full disk stops the run with
HDF5 healthy, the finished regions committed and the partial file resumable. A write that fails
anyway (a quota, an I/O error) marks the file broken: it is then closed detached from the disk
(`outputs.detach`), without committing anything more.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np

from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.extras import require
from caduceus_cli.io.outputs import detach, ensure_space
from caduceus_cli.windows import shard_order

CHUNK_ROWS = 2048  # 1 MiB per chunk at d = 256 in float16: large enough for codecs, small for partial reads
CHUNK_CACHE_BYTES = 64 << 20
# Finished regions are marked done in the file (and the file flushed) every COMMIT_REGIONS regions
# or COMMIT_BASES bases: a kill loses at most that much finished work, and many short regions do
# not pay a flush each. The rule depends only on the input, so the bytes written do too.
COMMIT_REGIONS = 256
COMMIT_BASES = 1 << 18
_REGION_ROW_BYTES = 64  # room one /regions row takes, with its names, in a new file
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


def _open(path: Path, mode: str) -> h5py.File:
    return h5py.File(path, mode, track_order=True, rdcc_nbytes=CHUNK_CACHE_BYTES)


def _close(h5: h5py.File, path: Path) -> None:
    """Close a file written to: flushed first, so a failure comes from a flush (which HDF5 survives),
    never from the close (which it does not); after a failed flush the file is abandoned."""
    try:
        h5.flush()
    except BaseException:
        _abandon(h5, path)
        raise
    h5.close()


def _abandon(h5: h5py.File, path: Path) -> None:
    """Close a file after a failed write without writing to it again (module docstring). Once only:
    HDF5 crashes when asked anything about a file whose close failed."""
    detach(path)
    with contextlib.suppress(Exception):  # the write's own error is the one to report
        h5.close()


def _plain(value: object) -> object:
    """An attribute value as plain Python, so settings read back compare equal to those written."""
    if isinstance(value, np.generic):
        value = value.item()
    return value.decode() if isinstance(value, bytes) else value


def _settings(h5: h5py.File) -> dict[str, object]:
    skip = (*PROVENANCE_ATTRS, *SHARD_ATTRS)
    return {key: _plain(value) for key, value in h5.attrs.items() if key not in skip}


def _write_regions(h5: h5py.File, columns: Mapping[str, Sequence]) -> None:
    group = h5.create_group("regions", track_order=True)
    for key in ("chrom", "name", "strand"):
        group.create_dataset(key, data=np.array(columns[key], dtype=object), dtype=_STR, track_times=False)
    for key in ("start", "end"):
        group.create_dataset(key, data=np.asarray(columns[key], dtype=np.int64), track_times=False)


def _read_regions(h5: h5py.File) -> dict[str, list]:
    group = h5["regions"]
    columns = {key: [s.decode() for s in group[key][()]] for key in ("chrom", "name", "strand")}
    columns.update({key: group[key][()].tolist() for key in ("start", "end")})
    return columns


def _region_columns(regions: Sequence[RegionLike]) -> dict[str, list]:
    return {key: [getattr(r, key) for r in regions] for key in ("chrom", "name", "strand", "start", "end")}


def regions_digest(regions: Sequence[RegionLike]) -> str:
    """sha256 of the whole region list: a setting, so shards of different region lists never merge."""
    digest = hashlib.sha256()
    for r in regions:
        digest.update(f"{r.chrom}\t{r.start}\t{r.end}\t{r.strand}\t{r.name}\n".encode())
    return digest.hexdigest()


def _create_groups(h5: h5py.File, layout: Layout, n_rows: int) -> None:
    precision = PRECISIONS[layout.precision]
    if layout.per_base:
        h5.create_group("embeddings", track_order=True)
    if layout.bin:
        h5.create_group("binned", track_order=True)
    if layout.soft_mask:
        h5.create_group("soft_mask", track_order=True)
    if layout.pool:
        # Small (one row per region), so contiguous and uncompressed, written row by row.
        h5.create_dataset("pooled", shape=(n_rows, layout.d), dtype=precision, track_times=False)


def _converted(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """rows as `dtype`; float32 -> float16 through torch, whose vectorised conversion is ~3x numpy's.

    At GPU rates this conversion is a large part of the writer thread's work (measured: numpy
    114 M values per CPU second, torch 353 M; one 131,072-base window at d = 256 is 34 M values).
    """
    if rows.dtype == np.float32 and dtype == np.float16:
        import torch  # here, so reading and merging files never imports it

        return torch.from_numpy(np.ascontiguousarray(rows)).to(torch.float16).numpy()
    return rows.astype(dtype, copy=False)


class _Blocks:
    """Regroups a stream of row arrays into runs of whole `size`-row blocks.

    Only the rows that complete a block begun by an earlier call are copied; whole blocks of new
    rows are handed on as views of the caller's array (a tile can be 64 MB).
    """

    def __init__(self, size: int, row_shape: tuple, dtype: np.dtype):
        self.size = size
        self._carry = np.empty((0, *row_shape), dtype=dtype)  # fewer than `size` rows

    def feed(self, rows: np.ndarray) -> list[np.ndarray]:
        """Arrays of whole blocks (each a multiple of `size` rows) now complete, in order."""
        ready = []
        if len(self._carry):
            fill = min(self.size - len(self._carry), len(rows))
            self._carry = np.concatenate([self._carry, rows[:fill]])
            rows = rows[fill:]
            if len(self._carry) < self.size:
                return ready
            ready.append(self._carry)
        whole = len(rows) // self.size * self.size
        if whole:
            ready.append(rows[:whole])
        self._carry = rows[whole:].copy()
        return ready

    def rest(self) -> np.ndarray:
        """The rows of the last, incomplete block (may be empty)."""
        return self._carry


class _ChunkAppender:
    """Appends rows to a dataset in whole chunks: no chunk is compressed twice; bytes are deterministic."""

    def __init__(self, dataset: h5py.Dataset):
        self._dataset = dataset
        self._blocks = _Blocks(dataset.chunks[0], dataset.shape[1:], dataset.dtype)
        self._written = 0

    def add(self, rows: np.ndarray) -> None:
        for block in self._blocks.feed(_converted(rows, self._dataset.dtype)):
            self._put(block)

    def close(self) -> None:
        self._put(self._blocks.rest())
        if self._written != self._dataset.shape[0]:
            raise RuntimeError(f"{self._dataset.name}: got {self._written} rows for {self._dataset.shape[0]}")

    def _put(self, block: np.ndarray) -> None:
        if len(block):
            self._dataset[self._written : self._written + len(block)] = block
            self._written += len(block)


class RegionWriter:
    """Receives one region's per-base rows in order (any split) and writes every dataset of that region."""

    def __init__(self, output: EmbeddingFile, row: int, length: int):
        self._output = output
        self._row = row
        layout = output.layout
        self._per_base = (
            _ChunkAppender(output.create_rows("embeddings", row, length)) if layout.per_base else None
        )
        if layout.bin:
            self._bins = _ChunkAppender(output.create_rows("binned", row, math.ceil(length / layout.bin)))
            self._bin_rows = _Blocks(layout.bin, (layout.d,), np.float32)
        self._mask = _ChunkAppender(output.create_mask(row, length)) if layout.soft_mask else None
        self._sum = np.zeros(layout.d, dtype=np.float64)
        self._length = length
        self._seen = 0

    def add(self, rows: np.ndarray, mask: np.ndarray | None = None) -> None:
        """The next len(rows) per-base rows (float32, (k, d)) of the region, and their soft-mask flags."""
        self._output.reserve(self._output.layout.estimate_bytes([len(rows)]))
        with self._output.writes():
            self._add(rows, mask)

    def _add(self, rows: np.ndarray, mask: np.ndarray | None) -> None:
        self._seen += len(rows)
        if self._per_base is not None:
            self._per_base.add(rows)
        if self._mask is not None:
            self._mask.add(mask)
        layout = self._output.layout
        if layout.pool:
            self._sum += rows.sum(axis=0, dtype=np.float64)
        if layout.bin:
            for block in self._bin_rows.feed(rows):
                self._bins.add(block.reshape(-1, layout.bin, layout.d).mean(axis=1, dtype=np.float64))

    def close(self) -> None:
        """Flush the last rows, write the pooled row and mark the region done (flushed to the file)."""
        if self._seen != self._length:
            raise RuntimeError(f"region row {self._row}: got {self._seen} rows for length {self._length}")
        with self._output.writes():
            self._write_held_rows()
        pooled = self._sum / self._length if self._output.layout.pool else None
        self._output.region_done(self._row, self._length, pooled)

    def _write_held_rows(self) -> None:
        """The rows held back for whole chunks, and the last (shorter) bin."""
        for appender in (self._per_base, self._mask):
            if appender is not None:
                appender.close()
        layout = self._output.layout
        if layout.bin:
            last = self._bin_rows.rest()  # the last bin may be shorter
            if len(last):
                self._bins.add(last.mean(axis=0, dtype=np.float64, keepdims=True))
            self._bins.close()


class EmbeddingFile:
    """An embed output being written: create or resume it, write regions, then `finish` it."""

    def __init__(self, h5: h5py.File, layout: Layout):
        self.h5 = h5
        self.path = Path(h5.filename)
        self.layout = layout
        self._filters = compression_filters(layout.compression)
        self._precision = PRECISIONS[layout.precision]
        # Handles looked up once: per-region lookups cost as much as small writes.
        self._groups = {name: h5[name] for name in ("embeddings", "binned", "soft_mask") if name in h5}
        self._pooled = h5["pooled"] if layout.pool else None
        self._done = h5["done"]
        self._finished: list[tuple[int, np.ndarray | None]] = []  # (row, pooled mean), not yet committed
        self._finished_bases = 0
        self._unflushed = 0  # bytes given to HDF5 since the last flush: at most what a flush writes
        self._broken = False  # a write failed: HDF5 must not be asked to write again
        self._closed = False

    @classmethod
    def create(
        cls,
        path: Path,
        regions: Sequence[RegionLike],
        layout: Layout,
        settings: Mapping[str, object],
        provenance: Mapping[str, object],
        shard: ShardInfo | None = None,
    ) -> EmbeddingFile:
        """A new file for `regions` (the shard's own when sharded) with settings and provenance attributes."""
        compression_filters(layout.compression)  # refuse an unusable codec before creating anything
        ensure_space(path, _REGION_ROW_BYTES * len(regions))
        h5 = _open(path, "w")
        try:
            h5.attrs.update({**provenance, **settings, **layout.attrs()})
            if shard is not None:
                h5.attrs.update(
                    {"shard_index": shard.index + 1, "shard_count": shard.count, "total_regions": shard.total}
                )
                h5.create_group("shard").create_dataset(
                    "index", data=shard.rows.astype(np.int64), track_times=False
                )
            _write_regions(h5, _region_columns(regions))
            _create_groups(h5, layout, len(regions))
            # stored now, so a done mark is later written in place: it needs no new room on the disk
            h5.create_dataset("done", data=np.zeros(len(regions), dtype=np.uint8), track_times=False)
            h5.flush()
        except BaseException:
            _abandon(h5, path)
            path.unlink(missing_ok=True)  # half a header is nothing to resume from
            raise
        return cls(h5, layout)

    @classmethod
    def resume(
        cls,
        path: Path,
        regions: Sequence[RegionLike],
        layout: Layout,
        settings: Mapping[str, object],
        shard: ShardInfo | None = None,
    ) -> EmbeddingFile:
        """Reopen a partial file after checking it was started with the same model, settings and regions."""
        try:
            h5 = _open(path, "r+")
        except OSError as err:
            raise InputError(
                f"{path}: cannot resume, the partial file is unreadable ({err}); run without --resume"
            ) from err
        try:
            _check_resumable(path, h5, regions, {**settings, **layout.attrs()}, shard)
        except BaseException:
            h5.close()
            raise
        return cls(h5, layout)

    @property
    def done(self) -> np.ndarray:
        """Per row: True when that region is completely written and committed."""
        return self._done[()].astype(bool)

    def region(self, row: int, length: int) -> RegionWriter:
        """A writer for region `row`; replaces whatever a killed run left of it."""
        with self.writes():
            return RegionWriter(self, row, length)

    def reserve(self, size: int) -> None:
        """Before giving HDF5 `size` more bytes: raise ENOSPC unless the disk has room for them and for
        everything a flush would still write, so a full disk stops the run while the file can close."""
        # HDF5 holds back at most a chunk cache per open dataset, and only the region being written
        # has its datasets open (closing a dataset writes its cache out)
        held_back = min(self._unflushed, CHUNK_CACHE_BYTES * len(self._groups))
        ensure_space(self.path, held_back + size)
        self._unflushed += size

    @contextlib.contextmanager
    def writes(self) -> Iterator[None]:
        """HDF5 writes: if one fails, the file is broken and only `close` (which abandons it) is left."""
        try:
            yield
        except OSError:
            self._broken = True
            raise
        except Exception as error:  # h5py also reports failed writes as RuntimeError, KeyError, ...
            self._broken = True
            raise OSError(f"HDF5: {error}") from error

    def create_rows(self, group: str, row: int, n_rows: int) -> h5py.Dataset:
        return self._create(group, row, (n_rows, self.layout.d), self._precision, CHUNK_ROWS, self._filters)

    def create_mask(self, row: int, length: int) -> h5py.Dataset:
        # Flags compress about 100x with gzip at a cost negligible next to the embeddings.
        gzip = {"compression": "gzip", "compression_opts": 1}
        return self._create("soft_mask", row, (length,), np.uint8, CHUNK_ROWS * 256, gzip)

    def _create(
        self, group: str, row: int, shape: tuple, dtype, chunk_rows: int, filters: dict
    ) -> h5py.Dataset:
        name, parent = str(row), self._groups[group]
        if name in parent:
            del parent[name]
        chunks = (min(shape[0], chunk_rows), *shape[1:])
        return parent.create_dataset(
            name, shape=shape, dtype=dtype, chunks=chunks, track_times=False, **filters
        )

    def region_done(self, row: int, length: int, pooled: np.ndarray | None) -> None:
        """Called when region `row` is completely written; commits every COMMIT_REGIONS regions or COMMIT_BASES."""
        self._finished.append((row, pooled))
        self._finished_bases += length
        if len(self._finished) >= COMMIT_REGIONS or self._finished_bases >= COMMIT_BASES:
            self.commit()

    def commit(self) -> None:
        """Flush the finished regions' data and pooled rows, then mark them done and flush again:
        --resume skips them from now on, and a mark is never on disk before what it marks."""
        if not self._finished:
            return
        rows = [row for row, _ in self._finished]  # increasing: regions are written in row order
        with self.writes():
            if self._pooled is not None:
                self._pooled[rows] = np.stack([pooled for _, pooled in self._finished])
            self.h5.flush()
            self._done[rows] = 1
            self.h5.flush()
        self._finished, self._finished_bases, self._unflushed = [], 0, 0

    def finish(self) -> None:
        """Drop the resume bookkeeping and close; the caller then renames the file into place."""
        self.commit()
        if not self.done.all():
            raise RuntimeError("finish() before every region was written")
        with self.writes():
            del self.h5["done"]
        self._closed = True
        _close(self.h5, self.path)

    def close(self) -> None:
        """Close an unfinished file, committing the regions completed so far (for --resume); after a
        failed write, close it without writing anything more."""
        if self._closed:  # by finish(), or an earlier close
            return
        self._closed = True
        if self._broken:
            _abandon(self.h5, self.path)
            return
        try:
            self.commit()
        except BaseException:
            _abandon(self.h5, self.path)
            raise
        _close(self.h5, self.path)


def _check_resumable(
    path: Path,
    h5: h5py.File,
    regions: Sequence[RegionLike],
    settings: Mapping[str, object],
    shard: ShardInfo | None,
) -> None:
    if "done" not in h5:
        raise InputError(f"{path}: not a resumable caduceus embed file; run without --resume")
    damage = _damage(h5)
    if damage:
        raise InputError(f"{path}: cannot resume, the partial file is damaged ({damage}); run without --resume")
    stored = _settings(h5)
    for key, value in settings.items():
        if stored.get(key) != _plain(value):
            raise InputError(
                f"{path}: cannot resume, {key} was {stored.get(key)!r} and is now {value!r}; "
                "use the same model and options, or start again without --resume"
            )
    if _read_regions(h5) != _region_columns(regions):
        raise InputError(f"{path}: cannot resume, the regions differ from the interrupted run's")
    stored_shard = (
        None if "shard" not in h5 else (int(h5.attrs["shard_index"]) - 1, int(h5.attrs["shard_count"]))
    )
    if stored_shard != (None if shard is None else (shard.index, shard.count)):
        raise InputError(f"{path}: cannot resume, --shard differs from the interrupted run's")


def _damage(h5: h5py.File) -> str:
    """What is wrong with a file whose every object header cannot be read ('' when nothing): a write
    that failed outside the room check (a quota, an I/O error) can leave a partial file so."""
    try:
        h5.visit(lambda name: None)
    except (OSError, RuntimeError, KeyError) as err:
        return str(err)
    return ""


def partial_progress(path: Path) -> tuple[int, int] | None:
    """(regions done, regions) of an interrupted run's partial file; None when it cannot be read as one."""
    try:
        with _open(path, "r") as h5:
            done = h5["done"][()] if "done" in h5 and not _damage(h5) else None
    except OSError:
        return None
    return None if done is None else (int(done.astype(bool).sum()), len(done))


def merge_shards(inputs: Sequence[Path], output: Path, provenance: Mapping[str, object]) -> None:
    """Join the complete shard files of one split run into the layout a single run writes.

    Refuses files from different models, settings or region lists, missing or repeated shards,
    and unfinished files. Per-region datasets are copied as stored (no recompression). The
    shards' command lines are kept, in shard order, as `shard_command_lines`.
    """
    shards: list[h5py.File] = []
    try:
        for path in inputs:
            try:
                shards.append(_open(path, "r"))
            except OSError as err:
                raise InputError(f"{path}: not a readable HDF5 file ({err})") from None
        order = _check_shards(inputs, shards)
        ensure_space(output, _REGION_ROW_BYTES * len(order))
        out = _open(output, "w")
        try:
            _write_merged(out, shards, order, provenance)
        except BaseException:
            _abandon(out, output)
            raise
        _close(out, output)
    finally:
        for h5 in shards:
            h5.close()


def _check_shards(inputs: Sequence[Path], shards: Sequence[h5py.File]) -> list[tuple[int, int]]:
    """Validate the shard set; return, per global region index, (shard position, row in that shard)."""
    first_path, first = inputs[0], shards[0]
    expected = _settings(first)
    owner: list[tuple[int, int] | None] = []
    for position, (path, h5) in enumerate(zip(inputs, shards, strict=True)):
        if "shard" not in h5:
            raise InputError(f"{path}: not a shard file (written without --shard); nothing to merge")
        if "done" in h5:
            raise InputError(f"{path}: unfinished shard (its run did not complete); rerun it with --resume")
        settings = _settings(h5)
        for key in sorted(expected.keys() | settings.keys()):
            if settings.get(key) != expected.get(key):
                raise InputError(
                    f"{path}: {key} is {settings.get(key)!r} but {expected.get(key)!r} in {first_path}; "
                    "shards of different runs cannot be merged"
                )
        count, total = int(h5.attrs["shard_count"]), int(h5.attrs["total_regions"])
        if (count, total) != (int(first.attrs["shard_count"]), int(first.attrs["total_regions"])):
            raise InputError(f"{path}: shard of a {count}-way split of {total} regions, unlike {first_path}")
        if not owner:
            owner = [None] * total
        for row, global_index in enumerate(h5["shard/index"][()].tolist()):
            owner[global_index] = (position, row)
    shard_order([(path, int(h5.attrs["shard_index"]), count) for path, h5 in zip(inputs, shards, strict=True)])
    return owner


def _write_merged(
    out: h5py.File,
    shards: Sequence[h5py.File],
    order: list[tuple[int, int]],
    provenance: Mapping[str, object],
) -> None:
    out.attrs.update({**provenance, **_settings(shards[0])})
    by_index = sorted(shards, key=lambda h5: int(h5.attrs["shard_index"]))
    out.attrs["shard_command_lines"] = [str(h5.attrs.get("command_line", "")) for h5 in by_index]
    columns = [_read_regions(h5) for h5 in shards]
    _write_regions(out, {key: [columns[s][key][row] for s, row in order] for key in columns[0]})
    groups = [name for name in ("embeddings", "binned", "soft_mask") if name in shards[0]]
    for name in groups:
        out.create_group(name, track_order=True)
    for global_index, (s, row) in enumerate(order):
        datasets = [shards[s][name][str(row)] for name in groups]
        ensure_space(Path(out.filename), sum(dataset.id.get_storage_size() for dataset in datasets))
        for name, dataset in zip(groups, datasets, strict=True):
            out.copy(dataset, out[name], name=str(global_index))
    if "pooled" in shards[0]:
        pooled = shards[0]["pooled"]
        merged = out.create_dataset(
            "pooled", shape=(len(order), pooled.shape[1]), dtype=pooled.dtype, track_times=False
        )
        for global_index, (s, row) in enumerate(order):
            merged[global_index] = shards[s]["pooled"][row]
