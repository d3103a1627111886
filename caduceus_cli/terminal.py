"""What a run shows on stderr: log lines (rich on a terminal, plain text otherwise, optionally a file too)
and progress bars. Shared by the commands and the pipelines."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

stderr = Console(stderr=True)
LOG_EVERY_S = 60  # progress lines in the log, every this many seconds, when stderr is not a terminal (no bar)


def log_to_file(message: str) -> None:
    """Record the error that ended a run in --log-file too (stderr already shows it once)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(
                logging.makeLogRecord(
                    {"name": "caduceus", "levelname": "ERROR", "levelno": 40, "msg": message}
                )
            )


def setup_logging(quiet: bool, log_file: Path | None) -> None:
    """Log to stderr (rich on a terminal, plain text otherwise) and optionally to a file."""
    handlers: list[logging.Handler] = []
    if stderr.is_terminal:
        rich = RichHandler(console=stderr, show_path=False, show_time=False)
        rich.setFormatter(logging.Formatter("%(message)s"))  # rich shows the level; basicConfig would repeat it
        handlers.append(rich)
    else:
        plain = logging.StreamHandler(sys.stderr)
        plain.setFormatter(logging.Formatter("%(asctime)s caduceus %(levelname)s %(message)s"))
        handlers.append(plain)
    if log_file is not None:
        to_file = logging.FileHandler(log_file)
        to_file.setFormatter(logging.Formatter("%(asctime)s caduceus %(levelname)s %(message)s"))
        handlers.append(to_file)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=handlers, force=True)


def counted(count: int, noun: str, plural: str = "") -> str:
    """A count for people, the one way log lines write them: '1 region', '18,486 bases', '2 alleles'."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def number_text(text: str | None) -> str:
    """A number a file records as text (a background's header), written as log lines write numbers:
    '100000' -> '100,000'; anything else as it is."""
    return f"{int(text):,}" if text and text.isdigit() else str(text)


def counts(tally: Mapping[str, int]) -> str:
    """'12 snv, 3 del' from {kind: count}: counts of named things (classes, flags), by name; 'none' when empty."""
    return ", ".join(f"{count:,} {name}" for name, count in sorted(tally.items())) or "none"


def format_rate(count: float, seconds: float) -> str:
    """count/seconds for people: whole numbers from 100 up ('1,234'), three significant digits below ('0.38')."""
    rate = count / max(seconds, 1e-9)
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


class _Count(ProgressColumn):
    """'done/total', or just 'done' when the total is unknown (a stream), instead of rich's 'done/?'."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        return Text(done if task.total is None else f"{done}/{int(task.total):,}", style="progress.download")


def progress_bar(quiet: bool, unit: str) -> Progress:
    """A rich progress bar on stderr; disabled with -q or when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        _Count(),
        TaskProgressColumn(),
        TextColumn(f"{{task.fields[rate]}} {unit}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=quiet or not stderr.is_terminal,
    )
