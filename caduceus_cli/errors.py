"""Errors that end a command, each with the exit code the CLI returns for it.

Exit codes (documented in the README):
  0  success
  1  input error: a missing or malformed file, record, region or checkpoint; an output that
     cannot be written (full disk, quota, I/O error) or is being written by another run
  2  usage error: unknown options (Typer/Click) or invalid option values (UsageError)
  3  a CUDA device was asked for and none is usable
  4  out of GPU memory even at batch size 1
"""


class CaduceusError(Exception):
    """Base class: an error the user can act on, printed as one line."""

    exit_code = 1


class InputError(CaduceusError):
    """A file, record, region or checkpoint is unusable."""


class UsageError(CaduceusError):
    """An option value is invalid (the same exit code as Click's own usage errors)."""

    exit_code = 2


class CheckpointError(InputError):
    """A model folder or hub repository is not a loadable Caduceus checkpoint."""


class DeviceUnavailableError(CaduceusError):
    exit_code = 3


class OutOfMemoryError(CaduceusError):
    exit_code = 4


class OutputError(CaduceusError):
    """An output cannot be written: a full disk, a quota, an I/O error, a folder gone, or a second
    run writing the same output."""
