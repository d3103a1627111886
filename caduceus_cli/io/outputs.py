"""Committing outputs: written under a temporary name and renamed into place on success, so no reader
ever sees half a file, and a failed run leaves nothing under the output's name.

`committed` is the one way every output is written: HDF5 embeddings (whose partial file an
interrupt or a write error keeps for `--resume`), scored VCFs with their `.tbi`/`.csi`, tracks,
tables, figures, merged files, and the `.fai`/`.gzi` index of a FASTA. It also makes the two
promises a cluster needs:

- One output, one writer: the partial file's lock (`claimed`, an OS lock, released by the kernel
  when the process ends however it ends) makes a second run on the same output refuse at once
  instead of deleting the first run's work.
- A failed write is one line: an OSError inside the block (a full disk, a quota, an I/O error, a
  folder that vanished), from a writer, its close or the rename, becomes an `OutputError` naming
  the output, and nothing is left at the output's name.

Two libraries cannot survive a failed write: HDF5 crashes closing a file whose flush failed, and
libBigWig crashes inside `addEntries`. Their writers call `ensure_space` before handing them bytes,
so a full disk stops the run while the library is still healthy; the HDF5 writer also `detach`es
its file before closing it after any other failed write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from caduceus_cli.errors import InputError, OutputError

log = logging.getLogger("caduceus")

# Room kept free beyond what a guarded writer is about to write: the library's own metadata (HDF5
# object headers and chunk indexes, bigWig zoom levels and index) and what closing the file needs.
SPACE_MARGIN = 4 << 20
# A failed write in a folder with less than this free is reported as a full disk, also when the
# library (htslib's BGZF) does not pass the system's reason on.
_NEARLY_FULL = 1 << 20
# What a filesystem without working locks answers (NFS without lockd, Lustre mounted noflock).
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)

STDOUT = Path("stdout")  # how an error line names standard output
_held: dict[Path, int] = {}  # lock file -> descriptor, for the claims this process holds


def check_writable_output(path: Path, force: bool) -> None:
    """Refuse to overwrite an existing output unless forced, before any work is done."""
    if path.exists() and not force:
        raise InputError(f"{path}: output exists; use --force to overwrite it")
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")


def partial_path(path: Path) -> Path:
    """The temporary name an output is written under until it is complete."""
    return path.with_name(path.name + ".partial")


def lock_path(path: Path) -> Path:
    """The file whose OS lock says that a live process is writing `path`."""
    return path.with_name(path.name + ".partial.lock")


def failure_reason(error: OSError, path: Path) -> str:
    """What the system said about a failed write of `path`, as text for an error line.

    htslib's BGZF raises without the system's reason ("BGZFile write failed"): in a folder with
    (nearly) no free space left that is a full disk, and said so.
    """
    if error.errno is not None:
        system = os.strerror(error.errno)
        # h5py puts HDF5's whole error stack in strerror; ours (ensure_space) adds the sizes
        return error.strerror if error.strerror and error.strerror.startswith(system) else system
    if _free_bytes(path) < _NEARLY_FULL:
        return os.strerror(errno.ENOSPC)
    return str(error) or type(error).__name__


@contextlib.contextmanager
def write_errors(path: Path) -> Iterator[None]:
    """An OSError raised in the block becomes one `OutputError` line: '`path`: cannot write: reason'.

    Readers used inside the block turn their own OSErrors into InputErrors; one that names a file
    other than the output's own files passes unchanged.
    """
    try:
        yield
    except OSError as error:
        if error.filename is not None and not Path(error.filename).name.startswith(path.name):
            raise  # about another file (an input), not this output
        raise OutputError(f"{path}: cannot write: {failure_reason(error, path)}") from None


def ensure_space(path: Path, size: int) -> None:
    """Raise ENOSPC unless the disk holding `path` has room for `size` more bytes and SPACE_MARGIN.

    For writers whose library cannot survive a failed write (module docstring): the run stops
    here, before the library fails, and the file it has written so far can still be closed.
    """
    free = _free_bytes(path)
    if free < size + SPACE_MARGIN:
        reason = f"{os.strerror(errno.ENOSPC)} ({free:,} bytes free, {size + SPACE_MARGIN:,} needed)"
        raise OSError(errno.ENOSPC, reason)


def detach(path: Path) -> None:
    """Point every descriptor this process holds on `path` at /dev/null.

    After a failed write HDF5 still flushes its caches when the file closes, fails again and then
    crashes (it closes a dataset twice). Detached, those last writes go nowhere and the file closes
    cleanly; the file on disk keeps what it held. Linux only (/proc/self/fd); elsewhere a no-op.
    """
    target = os.path.realpath(path)
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{name}") == target:
                    null = os.open(os.devnull, os.O_RDWR)
                    os.dup2(null, int(name))
                    os.close(null)


@contextlib.contextmanager
def claimed(*paths: Path) -> Iterator[None]:
    """Hold each output's writer lock for the block; refuse at once if a live run holds one.

    Commands claim their outputs before any work (a second run refuses in a second, not after
    loading a model); `committed` claims again, which a process that holds the claim passes.
    """
    with contextlib.ExitStack() as stack:
        for path in paths:
            stack.enter_context(_claim(path))
        yield


@contextlib.contextmanager
def _claim(path: Path) -> Iterator[None]:
    """The lock is a file beside the partial file, not the partial file itself: HDF5 takes its own
    flock on the file it writes, which an flock of ours on another descriptor would block, and
    writers truncate or recreate their file; the lock file is ours alone. It also records who holds
    it, for the message of the run that is refused."""
    lock = lock_path(path).absolute()
    if lock in _held:
        yield
        return
    with write_errors(path):
        descriptor = _lock(lock, path)
    _held[lock] = descriptor
    try:
        yield
    finally:
        del _held[lock]
        with contextlib.suppress(OSError):  # a vanished folder took the lock file with it
            lock.unlink()
        os.close(descriptor)


def _lock(lock: Path, path: Path) -> int:
    """An open descriptor of `lock` holding its exclusive flock; `OutputError` if another process holds it.

    The holder removes the lock file when done: a descriptor opened just before that removal
    locks a file no longer in the folder, so the lock is taken again on the new file.
    """
    while True:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _flock(descriptor, lock, path):
                return descriptor
            if _same_file(descriptor, lock):
                os.ftruncate(descriptor, 0)
                os.pwrite(descriptor, _holder().encode(), 0)
                return descriptor
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)


def _flock(descriptor: int, lock: Path, path: Path) -> bool:
    """Take the lock (True); False where the filesystem has no working locks (warned)."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "holder unknown"
        raise OutputError(
            f"{partial_path(path)}: in use by another caduceus run ({holder}); wait for it or write elsewhere"
        ) from None
    except OSError as error:
        if error.errno not in _NO_LOCKS:
            raise
        log.warning("%s: cannot lock (%s); a second run on this output would not be noticed", lock, error)
        return False
    return True


def _holder() -> str:
    """Who holds a lock, for the message of a run that is refused it."""
    return f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(descriptor), os.stat(path))
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def committed(
    path: Path,
    companions: Sequence[str] = (),
    resumable: bool = False,
    unique: bool = False,
    mode: int | None = None,
) -> Iterator[Path]:
    """Yield the temporary path to write `path` under; rename it into place if the block succeeds.

    `companions` are suffixes of files that belong to the output (".tbi", ".csi"): the block writes
    them beside the temporary file (temporary path + suffix). On success each one written is
    renamed to `path` + suffix and any other companion of `path` (a stale index) is removed; on
    failure they are removed with the temporary file, and with `path` if the rename got that far.
    An OSError (block, close or rename) becomes an `OutputError` naming `path`. A `resumable`
    output keeps its temporary file (`partial_path`) when the run is interrupted or a write fails,
    for `--resume`. `unique` gives the temporary file a unique name instead, for outputs that
    concurrent jobs may build at once (a FASTA index), and takes no lock; `mode` sets its
    permissions before the rename.
    """
    with write_errors(path), contextlib.ExitStack() as claim:
        if unique:
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
            os.close(handle)
            temporary = Path(name)
        else:
            claim.enter_context(_claim(path))
            temporary = partial_path(path)
        written = [Path(f"{temporary}{suffix}") for suffix in companions]
        placed: list[Path] = []  # what the rename has put at the output's names so far
        try:
            yield temporary
            if mode is not None:
                os.chmod(temporary, mode)
            _rename(temporary, path, companions, placed)
        except (KeyboardInterrupt, OSError, OutputError):
            _remove(*written, *placed, *([] if resumable else [temporary]))
            raise
        except BaseException:
            _remove(temporary, *written, *placed)
            raise


def _rename(temporary: Path, path: Path, companions: Sequence[str], placed: list[Path]) -> None:
    """Put the output in place, then each companion written beside it (noted in `placed`); drop
    stale companions."""
    os.replace(temporary, path)
    placed.append(path)
    for suffix in companions:
        companion, final = Path(f"{temporary}{suffix}"), Path(f"{path}{suffix}")
        if companion.exists():
            os.replace(companion, final)
            placed.append(final)
        else:
            final.unlink(missing_ok=True)


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):  # the folder may be gone; what can go, goes
            path.unlink(missing_ok=True)


def _free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the disk holding `path` (or its folder)."""
    try:
        stats = os.statvfs(path.parent)
    except OSError:  # a folder gone: unknown, and the write's own error will say what happened
        return sys.maxsize
    return stats.f_bavail * stats.f_frsize
