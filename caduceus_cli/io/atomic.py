"""Write outputs under a temporary name and rename on success, so no reader ever sees half a file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from caduceus_cli.errors import InputError


def check_writable_output(path: Path, force: bool) -> None:
    """Refuse to overwrite an existing output unless forced, before any work is done."""
    if path.exists() and not force:
        raise InputError(f"{path}: output exists; use --force to overwrite it")
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")


def partial_path(path: Path) -> Path:
    """The temporary name an output is written under until it is complete."""
    return path.with_name(path.name + ".partial")


@contextlib.contextmanager
def atomic_output(path: Path, keep_partial_on_interrupt: bool = False) -> Iterator[Path]:
    """Yield a temporary path; rename it to `path` if the block succeeds, else delete it.

    With `keep_partial_on_interrupt`, a KeyboardInterrupt leaves the partial file in place so a
    resumable writer can continue from it.
    """
    tmp = partial_path(path)
    try:
        yield tmp
    except KeyboardInterrupt:
        if not keep_partial_on_interrupt:
            tmp.unlink(missing_ok=True)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
