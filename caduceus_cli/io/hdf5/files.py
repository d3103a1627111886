"""Opening HDF5 files, and closing the ones written so that a failed write never crashes HDF5.

A full disk: HDF5 crashes (a segmentation fault) closing a file after a failed write, and what a
failed flush leaves on disk may not open again. So writers check for room before each write
(`outputs.ensure_space`), keeping enough free to flush and close: a full disk stops the run with
HDF5 healthy, the finished regions committed and the partial file resumable. A write that fails
anyway (a quota, an I/O error) marks the file broken: it is then closed detached from the disk
(`abandon`), without committing anything more.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import h5py

from caduceus_cli.io.outputs import detach

CHUNK_CACHE_BYTES = 64 << 20  # per open dataset: what HDF5 may hold back from the disk until a flush


def open_file(path: Path, mode: str) -> h5py.File:
    """An HDF5 file with groups in creation order (so bytes are deterministic) and a large chunk cache."""
    return h5py.File(path, mode, track_order=True, rdcc_nbytes=CHUNK_CACHE_BYTES)


def close_written(h5: h5py.File, path: Path) -> None:
    """Close a file written to: flushed first, so a failure comes from a flush (which HDF5 survives),
    never from the close (which it does not); after a failed flush the file is abandoned."""
    try:
        h5.flush()
    except BaseException:
        abandon(h5, path)
        raise
    h5.close()


def abandon(h5: h5py.File, path: Path) -> None:
    """Close a file after a failed write without writing to it again (module docstring). Once only:
    HDF5 crashes when asked anything about a file whose close failed."""
    detach(path)
    with contextlib.suppress(Exception):  # the write's own error is the one to report
        h5.close()
