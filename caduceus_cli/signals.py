"""How a command stops on a signal: Ctrl-C (SIGINT) and SIGTERM take one path.

SIGTERM is what a cluster sends at a job's time limit (SLURM: then SIGKILL after `KillWait`, 30 s
by default), on `scancel`, or when a workflow manager stops a job. Both signals raise
KeyboardInterrupt in the main thread, which every command handles on the way out: it saves what
it finished (embed's regions, score-variants' records, calibrate's sites) and says in one line how
to continue. The command line then exits with the shell's 128 + signal (`exit_code`): 130 for
Ctrl-C, 143 for SIGTERM. A second stop signal while that save runs is ignored, so the save
completes; SIGKILL still ends the process at once.

`uninterrupted` marks a block a stop signal must not cut (a chunk of rows written whole): the
signal takes effect when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_state = {"received": 0, "pending": False, "deferring": 0}


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Handle SIGINT and SIGTERM as the module docstring says for the block; the previous handlers after."""
    _state.update(received=0, pending=False, deferring=0)
    previous = {number: signal.signal(number, _stop) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _stop(number: int, _frame: object) -> None:
    if _state["received"]:
        return  # a repeat while the first one's save runs
    _state["received"] = number
    if _state["deferring"]:
        _state["pending"] = True
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A block that a stop signal does not cut: a signal received in it takes effect when it ends."""
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
    if _state["pending"] and not _state["deferring"]:
        _state["pending"] = False
        raise KeyboardInterrupt


def exit_code() -> int:
    """The shell's 128 + signal for the stop signal received (Ctrl-C when none was: Python's own)."""
    return 128 + (_state["received"] or signal.SIGINT)


def stopped_by() -> str:
    """How the stop is reported: 'interrupted' (Ctrl-C) or 'terminated (SIGTERM)'."""
    return "terminated (SIGTERM)" if _state["received"] == signal.SIGTERM else "interrupted"
