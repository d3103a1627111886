"""How a command stops on a signal: Ctrl-C (SIGINT) and SIGTERM take one path.

SIGTERM is what a cluster sends at a job's time limit (SLURM: then SIGKILL after `KillWait`, 30 s
by default), on `scancel`, or when a workflow manager stops a job. Both signals raise
KeyboardInterrupt in the main thread, which every command handles on the way out: it saves what
it finished (embed's regions, score-variants' records) and says in one line how
to continue. The command line then exits with the shell's 128 + signal (`exit_code`): 130 for
Ctrl-C, 143 for SIGTERM. A second stop signal while that save runs is ignored, so the save
completes; SIGKILL still ends the process at once.

`interrupt_says` gives a command's own line for what a stop left, where that is nothing:
`track` and `calibrate` write whole files only, and a run split with `--shard` into parts that
each fit a time limit is what lets a rerun skip finished work there.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_state = {"received": 0}

WHOLE_FILES_ONLY = (
    "nothing of {outputs} was kept (written whole or not at all); rerun the same command, or split it with "
    "--shard I/N into parts that each finish in the time limit (a rerun then runs only the missing parts)"
)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Handle SIGINT and SIGTERM as the module docstring says for the block; the previous handlers after."""
    _state["received"] = 0
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
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_says(left: str) -> Iterator[None]:
    """A stop signal in the block is reported with `left`: what the stop left and how to go on."""
    try:
        yield
    except KeyboardInterrupt as interrupt:
        raise KeyboardInterrupt(str(interrupt) or left) from None


def exit_code() -> int:
    """The shell's 128 + signal for the stop signal received (Ctrl-C when none was: Python's own)."""
    return 128 + (_state["received"] or signal.SIGINT)


def stopped_by() -> str:
    """How the stop is reported: 'interrupted' (Ctrl-C) or 'terminated (SIGTERM)'."""
    return "terminated (SIGTERM)" if _state["received"] == signal.SIGTERM else "interrupted"
