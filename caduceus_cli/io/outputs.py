"""Committing outputs: written under a temporary name and renamed into place on success, so no reader
ever sees half a file, and a failed run leaves nothing under the output's name.

`committed` is the one way every output is written: HDF5 embeddings (whose partial file a
Ctrl-C keeps for `--resume`), scored VCFs with their `.tbi`/`.csi`, merged files, and the
`.fai`/`.gzi` index of a FASTA.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
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
def committed(
    path: Path,
    companions: Sequence[str] = (),
    keep_partial_on_interrupt: bool = False,
    unique: bool = False,
    mode: int | None = None,
) -> Iterator[Path]:
    """Yield the temporary path to write `path` under; rename it into place if the block succeeds.

    `companions` are suffixes of files that belong to the output (".tbi", ".csi"): the block writes
    them beside the temporary file (temporary path + suffix). On success each one written is
    renamed to `path` + suffix and any other companion of `path` (a stale index) is removed; on
    failure they are removed with the temporary file. With `keep_partial_on_interrupt` a Ctrl-C
    leaves the temporary file (`partial_path`) for a resumable writer. `unique` gives the temporary
    file a unique name instead, for outputs that concurrent jobs may build at once (a FASTA index);
    `mode` sets its permissions before the rename.
    """
    if unique:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        os.close(handle)
        temporary = Path(name)
    else:
        temporary = partial_path(path)
    written = [Path(f"{temporary}{suffix}") for suffix in companions]
    try:
        yield temporary
    except KeyboardInterrupt:
        _remove(*written, *([] if keep_partial_on_interrupt else [temporary]))
        raise
    except BaseException:
        _remove(temporary, *written)
        raise
    if mode is not None:
        os.chmod(temporary, mode)
    os.replace(temporary, path)
    for suffix, companion in zip(companions, written, strict=True):
        if companion.exists():
            os.replace(companion, f"{path}{suffix}")
        else:
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
