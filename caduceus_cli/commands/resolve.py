"""Option values resolved and checked before any work: defaults from the model, shards, scores, provenance."""

from __future__ import annotations

import logging
import shlex
import sys
from enum import Enum

from caduceus_cli.errors import UsageError
from caduceus_cli.scoring.settings import check_variant_index, check_window, default_window
from caduceus_cli.windows import FALLBACK_WINDOW, check_tiling, default_overlap

log = logging.getLogger("caduceus")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I-1, N) with 0-based index; None when not sharding."""
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as err:
        raise UsageError(f"--shard {text}: expected I/N, e.g. 2/8") from err
    if not 1 <= index <= count:
        raise UsageError(f"--shard {text}: need 1 <= I <= N")
    return index - 1, count


def tiling(trained: int | None, window: int | None, overlap: int | None) -> tuple[int, int]:
    """--window and --overlap of the tiled commands (embed, track), defaults filled in and checked.

    The window defaults to the model's training length `trained`, else FALLBACK_WINDOW (logged); the
    overlap to `default_overlap(window)`."""
    if window is None:
        window = trained
    if window is None:
        window = FALLBACK_WINDOW
        log.info(
            "the model records no training length; tiling with --window %d (the published models' length)",
            window,
        )
    overlap = default_overlap(window) if overlap is None else overlap
    try:
        check_tiling(window, overlap)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return window, overlap


def scores_asked(score: list[Enum] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """The --score values asked for, each once, in the order asked; `default` when none."""
    return tuple(dict.fromkeys(s.value for s in score)) if score else default


def check_emb_flank(flank: int) -> None:
    """--emb-flank of score-variants and calibrate. Checked in the command, not by Typer's min=0: the
    error then says it in the tool's words, and reaches --log-file."""
    if flank < 0:
        raise UsageError(f"--emb-flank {flank}: must be 0 or more")


def check_variant_window(window: int | None, variant_index: int | None) -> None:
    """The --window and --variant-index given to score-variants or ism, checked before any work."""
    if window is not None:
        check_window(window)
        if variant_index is not None:
            check_variant_index(variant_index, window)


def variant_window(trained: int | None, window: int | None, variant_index: int | None) -> int:
    """--window of score-variants, calibrate and ism, defaulting to the model's training length `trained`,
    at most MAX_DEFAULT_WINDOW (logged when the model records none); --variant-index checked against it."""
    if window is None:
        window = default_window(trained)
        if trained is None:
            log.info(
                "the model records no training length; scoring with --window %d (the largest default)", window
            )
        if variant_index is not None:
            check_variant_index(variant_index, window)
    return window


def command_line() -> str:
    """The command as typed, for provenance records in outputs."""
    return shlex.join(["caduceus", *sys.argv[1:]])
