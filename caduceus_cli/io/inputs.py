"""Input paths checked before any work: a missing file or a folder is one line naming it, and an input
read only once may be a pipe (`-R <(grep ... peaks.bed)`, `score-variants <(zcat calls.vcf.gz)`), as
bcftools and samtools read them; an input read more than once (through an index, or counted first)
must be a regular file, and a pipe there is refused saying why."""

from __future__ import annotations

import os

from caduceus_cli.errors import InputError


def check_input(path: str | os.PathLike[str], what: str, read_again: str = "") -> None:
    """`path` can be read as `what` ("VCF file"): it exists and is not a folder; when `read_again` says why
    it is read more than once, it is a regular file, not a pipe."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise InputError(f"{name}: {what} not found")
    if os.path.isdir(name):
        raise InputError(f"{name}: a folder, not a {what}")
    if read_again and not os.path.isfile(name):
        raise InputError(f"{name}: not a regular file; {read_again}, which a pipe cannot give")


def is_stream(path: str | os.PathLike[str]) -> bool:
    """Stdin ('-') or a pipe: it can be read once only."""
    return os.fspath(path) == "-" or not os.path.isfile(path)
