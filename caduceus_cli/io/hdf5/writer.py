"""Writing the embed output (`layout`): create or resume an `EmbeddingFile`, write each region
through a `RegionWriter`, commit finished regions in batches, then `finish`.

A run can stop anywhere (a kill, Ctrl-C, a full disk): finished regions are committed in batches
(`RegionCommits`), and every write goes through the file's `WriteGuard` (room checked first; a
failure marks the file broken, `files`), so a stopped run leaves a file `--resume` continues.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from caduceus_cli.errors import InputError
from caduceus_cli.io.hdf5.chunks import Blocks, ChunkAppender
from caduceus_cli.io.hdf5.files import CHUNK_CACHE_BYTES, abandon, close_written, open_file
from caduceus_cli.io.hdf5.layout import (
    CHUNK_ROWS,
    PER_REGION_GROUPS,
    PRECISIONS,
    REGION_ROW_BYTES,
    Layout,
    RegionLike,
    ShardInfo,
    compression_filters,
    region_columns,
    write_regions,
)
from caduceus_cli.io.hdf5.resume import check_resumable
from caduceus_cli.io.outputs import ensure_space

# Finished regions are marked done in the file (and the file flushed) every COMMIT_REGIONS regions
# or COMMIT_BASES bases: a kill loses at most that much finished work, and many short regions do
# not pay a flush each. The rule depends only on the input, so the bytes written do too.
COMMIT_REGIONS = 256
COMMIT_BASES = 1 << 18


class WriteGuard:
    """The writes to one open file: room on the disk checked before HDF5 gets bytes (`reserve`), and
    a failed write marking the file `broken`, after which it may only be abandoned (`files`)."""

    def __init__(self, path: Path, open_datasets: int):
        self.path = path
        # HDF5 holds back at most a chunk cache per open dataset, and only the region being written
        # has its datasets open (closing a dataset writes its cache out)
        self._held_back_limit = CHUNK_CACHE_BYTES * open_datasets
        self._unflushed = 0  # bytes given to HDF5 since the last flush: at most what a flush writes
        self.broken = False

    def reserve(self, size: int) -> None:
        """Before giving HDF5 `size` more bytes: raise ENOSPC unless the disk has room for them and for
        everything a flush would still write, so a full disk stops the run while the file can close."""
        ensure_space(self.path, min(self._unflushed, self._held_back_limit) + size)
        self._unflushed += size

    def flushed(self) -> None:
        """The file was just flushed: nothing given to HDF5 is held back any more."""
        self._unflushed = 0

    @contextlib.contextmanager
    def writes(self) -> Iterator[None]:
        """HDF5 writes: if one fails, the file is broken."""
        try:
            yield
        except OSError:
            self.broken = True
            raise
        except Exception as error:  # h5py also reports failed writes as RuntimeError, KeyError, ...
            self.broken = True
            raise OSError(f"HDF5: {error}") from error


class RegionCommits:
    """Regions completely written, marked in /done in batches: every COMMIT_REGIONS regions or
    COMMIT_BASES bases, and when the file closes."""

    def __init__(self, h5: h5py.File, guard: WriteGuard, pooled: h5py.Dataset | None):
        self._h5, self._guard, self._pooled = h5, guard, pooled
        self._done = h5["done"]
        self._finished: list[tuple[int, np.ndarray | None]] = []  # (row, pooled mean), not yet committed
        self._finished_bases = 0

    @property
    def done(self) -> np.ndarray:
        """Per row: True when that region is completely written and committed."""
        return self._done[()].astype(bool)

    def region_done(self, row: int, length: int, pooled: np.ndarray | None) -> None:
        """Region `row` is completely written (`pooled`: its mean, with --pool); commit when a batch is full."""
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
        with self._guard.writes():
            if self._pooled is not None:
                self._pooled[rows] = np.stack([pooled for _, pooled in self._finished])
            self._h5.flush()
            self._done[rows] = 1
            self._h5.flush()
        self._guard.flushed()
        self._finished, self._finished_bases = [], 0


class RegionWriter:
    """Receives one region's per-base rows in order (any split) and writes every dataset of that region:
    `datasets` (by group: `embeddings`, `binned`, `soft_mask`, those the layout has) and, through
    `commits`, its pooled mean."""

    def __init__(
        self,
        row: int,
        length: int,
        layout: Layout,
        datasets: Mapping[str, h5py.Dataset],
        guard: WriteGuard,
        commits: RegionCommits,
    ):
        self._row, self._length, self._layout = row, length, layout
        self._guard, self._commits = guard, commits
        appenders = {group: ChunkAppender(dataset) for group, dataset in datasets.items()}
        self._per_base = appenders.get("embeddings")
        self._bins = appenders.get("binned")
        self._mask = appenders.get("soft_mask")
        if layout.bin:
            self._bin_rows = Blocks(layout.bin, (layout.d,), np.float32)
        self._sum = np.zeros(layout.d, dtype=np.float64)
        self._seen = 0

    def add(self, rows: np.ndarray, mask: np.ndarray | None = None) -> None:
        """The next len(rows) per-base rows (float32, (k, d)) of the region, and their soft-mask flags."""
        self._guard.reserve(self._layout.estimate_bytes([len(rows)]))
        with self._guard.writes():
            self._add(rows, mask)

    def _add(self, rows: np.ndarray, mask: np.ndarray | None) -> None:
        self._seen += len(rows)
        if self._per_base is not None:
            self._per_base.add(rows)
        if self._mask is not None:
            self._mask.add(mask)
        layout = self._layout
        if layout.pool:
            self._sum += rows.sum(axis=0, dtype=np.float64)
        if layout.bin:
            for block in self._bin_rows.feed(rows):
                self._bins.add(block.reshape(-1, layout.bin, layout.d).mean(axis=1, dtype=np.float64))

    def close(self) -> None:
        """Flush the last rows and hand the region, with its pooled mean, to the commits."""
        if self._seen != self._length:
            raise RuntimeError(f"region row {self._row}: got {self._seen} rows for length {self._length}")
        with self._guard.writes():
            self._write_held_rows()
        pooled = self._sum / self._length if self._layout.pool else None
        self._commits.region_done(self._row, self._length, pooled)

    def _write_held_rows(self) -> None:
        """The rows held back for whole chunks, and the last (shorter) bin."""
        for appender in (self._per_base, self._mask):
            if appender is not None:
                appender.close()
        if self._layout.bin:
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
        self._groups = {name: h5[name] for name in PER_REGION_GROUPS if name in h5}
        self._guard = WriteGuard(self.path, len(self._groups))
        self._commits = RegionCommits(h5, self._guard, h5["pooled"] if layout.pool else None)
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
        ensure_space(path, REGION_ROW_BYTES * len(regions))
        h5 = open_file(path, "w")
        try:
            h5.attrs.update({**provenance, **settings, **layout.attrs()})
            if shard is not None:
                h5.attrs.update(
                    {"shard_index": shard.index + 1, "shard_count": shard.count, "total_regions": shard.total}
                )
                h5.create_group("shard").create_dataset(
                    "index", data=shard.rows.astype(np.int64), track_times=False
                )
            write_regions(h5, region_columns(regions))
            _create_groups(h5, layout, len(regions))
            # stored now, so a done mark is later written in place: it needs no new room on the disk
            h5.create_dataset("done", data=np.zeros(len(regions), dtype=np.uint8), track_times=False)
            h5.flush()
        except BaseException:
            abandon(h5, path)
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
            h5 = open_file(path, "r+")
        except OSError as err:
            raise InputError(
                f"{path}: cannot resume, the partial file is unreadable ({err}); run without --resume"
            ) from err
        try:
            check_resumable(path, h5, regions, {**settings, **layout.attrs()}, shard)
        except BaseException:
            h5.close()
            raise
        return cls(h5, layout)

    @property
    def done(self) -> np.ndarray:
        """Per row: True when that region is completely written and committed."""
        return self._commits.done

    def region(self, row: int, length: int) -> RegionWriter:
        """A writer for region `row`; replaces whatever a killed run left of it."""
        with self._guard.writes():
            datasets = self._create_datasets(row, length)
            return RegionWriter(row, length, self.layout, datasets, self._guard, self._commits)

    def _create_datasets(self, row: int, length: int) -> dict[str, h5py.Dataset]:
        """Region `row`'s dataset in each per-region group of the layout, at its fixed chunk shape."""
        layout, datasets = self.layout, {}
        values = (self._precision, CHUNK_ROWS, self._filters)
        if layout.per_base:
            datasets["embeddings"] = self._create("embeddings", row, (length, layout.d), *values)
        if layout.bin:
            bins = math.ceil(length / layout.bin)
            datasets["binned"] = self._create("binned", row, (bins, layout.d), *values)
        if layout.soft_mask:
            # Flags compress about 100x with gzip at a cost negligible next to the embeddings.
            gzip = {"compression": "gzip", "compression_opts": 1}
            datasets["soft_mask"] = self._create("soft_mask", row, (length,), np.uint8, CHUNK_ROWS * 256, gzip)
        return datasets

    def _create(
        self, group: str, row: int, shape: tuple, dtype, chunk_rows: int, filters: dict
    ) -> h5py.Dataset:
        name, parent = str(row), self._groups[group]
        if name in parent:
            del parent[name]  # what a killed run left of the region
        chunks = (min(shape[0], chunk_rows), *shape[1:])
        return parent.create_dataset(
            name, shape=shape, dtype=dtype, chunks=chunks, track_times=False, **filters
        )

    def finish(self) -> None:
        """Drop the resume bookkeeping and close; the caller then renames the file into place."""
        self._commits.commit()
        if not self.done.all():
            raise RuntimeError("finish() before every region was written")
        with self._guard.writes():
            del self.h5["done"]
        self._closed = True
        close_written(self.h5, self.path)

    def close(self) -> None:
        """Close an unfinished file, committing the regions completed so far (for --resume); after a
        failed write, close it without writing anything more."""
        if self._closed:  # by finish(), or an earlier close
            return
        self._closed = True
        if self._guard.broken:
            abandon(self.h5, self.path)
            return
        try:
            self._commits.commit()
        except BaseException:
            abandon(self.h5, self.path)
            raise
        close_written(self.h5, self.path)


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
