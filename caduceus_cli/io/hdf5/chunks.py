"""Rows appended to an HDF5 dataset in whole chunks, whatever split they arrive in.

Each chunk is written (and compressed) once, in row order, so the file's bytes depend only on the
values, never on how the tiles cut a region.
"""

from __future__ import annotations

import h5py
import numpy as np


def converted(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """rows as `dtype`; float32 -> float16 through torch, whose vectorised conversion is ~3x numpy's.

    At GPU rates this conversion is a large part of the writer thread's work (measured: numpy
    114 M values per CPU second, torch 353 M; one 131,072-base window at d = 256 is 34 M values).
    """
    if rows.dtype == np.float32 and dtype == np.float16:
        import torch  # here, so reading and merging files never imports it

        return torch.from_numpy(np.ascontiguousarray(rows)).to(torch.float16).numpy()
    return rows.astype(dtype, copy=False)


class Blocks:
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


class ChunkAppender:
    """Appends rows to a dataset in whole chunks: no chunk is compressed twice; bytes are deterministic."""

    def __init__(self, dataset: h5py.Dataset):
        self._dataset = dataset
        self._blocks = Blocks(dataset.chunks[0], dataset.shape[1:], dataset.dtype)
        self._written = 0

    def add(self, rows: np.ndarray) -> None:
        for block in self._blocks.feed(converted(rows, self._dataset.dtype)):
            self._put(block)

    def close(self) -> None:
        self._put(self._blocks.rest())
        if self._written != self._dataset.shape[0]:
            raise RuntimeError(f"{self._dataset.name}: got {self._written} rows for {self._dataset.shape[0]}")

    def _put(self, block: np.ndarray) -> None:
        if len(block):
            self._dataset[self._written : self._written + len(block)] = block
            self._written += len(block)
