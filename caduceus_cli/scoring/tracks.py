"""Per-base scores of one RC-conjoined pass over the reference (`caduceus track`).

Track scores read the logits at each position of the unmodified reference, so one pass scores
every base and every single-base change there ("unmasked", as `llr-unmasked`). Positions whose
reference is not A, C, G or T (N, padding) have no reference allele, so every value there is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from caduceus_cli.errors import UsageError
from caduceus_cli.scoring.scores import mean_alternative_llr, nucleotide_log_probs, substitution_llrs

TRACK_SCORES = ("ref-logprob", "entropy", "llr-min", "llr-mean")


def track_scores(
    logits: np.ndarray, columns: np.ndarray, scores: Sequence[str] = TRACK_SCORES
) -> dict[str, np.ndarray]:
    """The requested TRACK_SCORES of each position, float32 (L,) arrays, NaN where the reference is not ACGT.

    `logits` (L, 4) are the A, C, G, T columns of the model's `logits_conjoined` rows for the
    reference, whose bases are `columns` (L,) (`Tokenizer.columns`).
    ref-logprob: log P(ref) under the A/C/G/T softmax; entropy: of that distribution, in nats;
    llr-min: the single-base change the model finds least likely (the smallest of the 3 LLRs); llr-mean:
    their mean.
    """
    unknown = [name for name in scores if name not in TRACK_SCORES]
    if unknown:
        raise UsageError(f"--score {unknown[0]}: not a track score; choose from {', '.join(TRACK_SCORES)}")
    no_reference = columns < 0
    values: dict[str, np.ndarray] = {}
    if "ref-logprob" in scores or "entropy" in scores:
        log_probs = nucleotide_log_probs(logits)
        values["ref-logprob"] = log_probs[np.arange(len(columns)), columns]
        values["entropy"] = -(np.exp(log_probs) * log_probs).sum(axis=1)
    if "llr-min" in scores or "llr-mean" in scores:
        llrs = substitution_llrs(logits, columns)
        values["llr-mean"] = mean_alternative_llr(llrs)
        values["llr-min"] = np.where(np.isnan(llrs), np.inf, llrs).min(axis=1)  # NaN cells never win
    out = {}
    for name in scores:
        track = values[name].astype(np.float32)
        track[no_reference] = np.nan
        out[name] = track
    return out
