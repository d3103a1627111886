"""What a variant score is: window geometry and scores as functions of logits and embeddings.

Pure numpy, no files and no model: `score-variants` builds the windows described here, runs
them through the engine and hands the outputs to these functions.

Windows (0-based, half-open, W even): a SNV at p0 is scored in the window
`[p0 - W//2, p0 - W//2 + W)`, so the variant sits at index W//2; bases outside the contig read
as N. The unmasked LLR instead reads a fixed grid of tiles (see `unmasked_tile`), so that one
pass over the reference scores every variant in a tile's central half, whatever the other
records are: shards and a single run give the same numbers.
"""

from __future__ import annotations

import numpy as np

from caduceus_cli.errors import InputError
from caduceus_cli.tokens import A_ID, C_ID, G_ID, MASK_ID, NUCLEOTIDE_IDS, T_ID

BASE_ID = {"A": A_ID, "C": C_ID, "G": G_ID, "T": T_ID}


def check_window(window: int) -> None:
    """W must be even (the variant at W//2 has W//2 bases on its left, W//2 - 1 on its right) and >= 2."""
    if window < 2 or window % 2:
        raise InputError(f"--window {window}: must be an even number of bases, at least 2")


def variant_window(p0: int, window: int) -> tuple[int, int]:
    """[start, end) of the window centred on 0-based position p0 (p0 at index window // 2)."""
    start = p0 - window // 2
    return start, start + window


def unmasked_tile(p0: int, window: int) -> tuple[int, int]:
    """(start, index of p0) of the grid tile that scores p0 without masking.

    Tiles are W long and start every H = W//2 bases at k*H - W//4 (k = 0, 1, ...), so their
    central halves [k*H, k*H + H) cover the contig once: every variant is read at least W//4
    bases from a tile edge, and all variants in one central half share a single pass.
    """
    half = window // 2
    start = (p0 // half) * half - (window - half) // 2
    return start, p0 - start


def flank_rows(window: int, flank: int) -> slice:
    """Rows of a variant window within `flank` bases of the variant (index W//2), clipped to the window."""
    centre = window // 2
    return slice(max(centre - flank, 0), min(centre + flank + 1, window))


def with_base(ids: np.ndarray, index: int, token: int) -> np.ndarray:
    """A copy of `ids` with position `index` replaced by `token` (an alternative base or MASK_ID)."""
    out = ids.copy()
    out[index] = token
    return out


def masked(ids: np.ndarray, index: int) -> np.ndarray:
    return with_base(ids, index, MASK_ID)


def log_likelihood_ratio(logits: np.ndarray, ref: str, alt: str) -> float:
    """logit[alt] - logit[ref] of one position's 16 logits: log P(alt) - log P(ref) under any softmax."""
    return float(logits[BASE_ID[alt]]) - float(logits[BASE_ID[ref]])


def nucleotide_probs(logits: np.ndarray) -> dict[str, float]:
    """Softmax over the A, C, G, T logits of one position (computed in float64)."""
    acgt = logits[NUCLEOTIDE_IDS].astype(np.float64)
    weights = np.exp(acgt - acgt.max())
    probs = weights / weights.sum()
    return dict(zip("ACGT", probs.tolist(), strict=True))


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos(a, b) in float64; 0 for identical directions, up to 2 for opposite ones."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64) * np.linalg.norm(b64)
    if norms == 0.0:
        return 0.0 if not (a64.any() or b64.any()) else 1.0
    return float(1.0 - np.dot(a64, b64) / norms)


def l2_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))
