"""Where a change sits in its window, which changes fit, and which rows a REF and an ALT window share.

Windows (0-based, half-open, W even): a SNV at p0 is scored in the window `[p0 - c, p0 - c + W)`,
so the variant sits at index c (`--variant-index`, default W//2); a longer change is centred there
(`change_row`); bases outside the contig read as N. The unmasked LLR instead reads a fixed grid of
tiles (see `unmasked_tile`), so that one pass over the reference scores every variant in a tile's
central half, whatever the other records are: shards and a single run give the same numbers.
"""

from __future__ import annotations

import numpy as np

from caduceus_cli.alleles import Change
from caduceus_cli.scoring.settings import Settings


def change_row(change: Change, settings: Settings) -> int:
    """Window row of a change's first base: its span centred on the variant index (a SNV at the index)."""
    return settings.centre - change.span // 2


def window_start(change: Change, settings: Settings) -> int:
    """The reference position of row 0 of every window that scores `change`."""
    return change.pos0 - change_row(change, settings)


def fits_window(change: Change, settings: Settings) -> bool:
    """A change is scored when it spans at most half the window and lies inside it."""
    row = change_row(change, settings)
    return change.span <= settings.window // 2 and row >= 0 and row + change.span <= settings.window


def aligned_rows(change: Change, side: str, settings: Settings, flank: int | None = None) -> np.ndarray:
    """Rows of the `side` ("ref" or "alt") window holding the bases both windows share, in the same order
    in each: the left flank, the changed block itself for a substitution (its rows line up), and the
    right flank, up to `flank` bases each side of the change (None: as far as both windows reach).

    Both windows start at the same reference base and hold the change at `change_row`; after it the REF
    window continues with the reference and the ALT window with the same reference bases, shifted by the
    difference in length, so the right flanks line up base for base."""
    row, window = change_row(change, settings), settings.window
    reach = window if flank is None else flank
    right = min(reach, window - row - change.span)  # both windows hold this much after the change
    allele = len(change.ref if side == "ref" else change.alt)
    middle = np.arange(row, row + allele) if change.is_substitution else np.arange(0)
    left = np.arange(max(row - reach, 0), row)
    return np.concatenate([left, middle, np.arange(row + allele, row + allele + right)]).astype(np.int64)


def unmasked_tile(p0: int, window: int) -> tuple[int, int]:
    """(start, index of p0) of the grid tile that scores p0 without masking.

    Tiles are W long and start every H = W//2 bases at k*H - (W - H)//2 (k = 0, 1, ...), so their
    central halves [k*H, k*H + H) cover the contig once: every variant is read at least W//4
    bases from a tile edge, and all variants in one central half share a single pass.
    """
    half = window // 2
    start = (p0 // half) * half - tile_centre(window).start
    return start, p0 - start


def tile_centre(window: int) -> slice:
    """Rows of a tile whose positions it scores: its central half."""
    half = window // 2
    edge = (window - half) // 2
    return slice(edge, edge + half)
