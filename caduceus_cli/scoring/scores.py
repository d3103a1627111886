"""Scores as functions of logits and embeddings: pure numpy, no files, no model, no windows.

Logits here are the model's A, C, G, T columns only (`Tokenizer.nucleotide_logits`, in that
order, whatever the checkpoint's vocabulary), and reference bases are columns 0-3 (-1 for N):
the scores do not depend on how a checkpoint numbers its tokens. LLRs are differences of logits:
the same number under the 4-way softmax over A, C, G, T or the full one.
"""

from __future__ import annotations

import numpy as np

from caduceus_cli.alleles import Change
from caduceus_cli.scoring.geometry import aligned_rows, change_row
from caduceus_cli.scoring.settings import Settings
from caduceus_cli.tokens import ACGT

COLUMN = {base: column for column, base in enumerate(ACGT)}  # a base's column among the nucleotide logits


def log_likelihood_ratio(logits: np.ndarray, ref: str, alt: str) -> float:
    """logit[alt] - logit[ref] of one position's A, C, G, T logits: log P(alt) - log P(ref) under any softmax."""
    return float(logits[COLUMN[alt]]) - float(logits[COLUMN[ref]])


def nucleotide_log_probs(logits: np.ndarray) -> np.ndarray:
    """(L, 4) log-softmax over each position's A, C, G, T logits in float64 (the log of `nucleotide_probs`)."""
    acgt = logits.astype(np.float64)
    shifted = acgt - acgt.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def nucleotide_probs(logits: np.ndarray) -> dict[str, float]:
    """Softmax over one position's A, C, G, T logits (computed in float64)."""
    probs = np.exp(nucleotide_log_probs(logits[None])[0])
    return dict(zip(ACGT, probs.tolist(), strict=True))


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos(a, b) in float64; 0 for identical directions, up to 2 for opposite ones."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64) * np.linalg.norm(b64)
    if norms == 0.0:
        return 0.0 if not (a64.any() or b64.any()) else 1.0
    return float(1.0 - np.dot(a64, b64) / norms)


def l2_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


def haplotype_side(logits: np.ndarray, bases: np.ndarray, change: Change, side: str, settings: Settings) -> float:
    """One side ("ref" or "alt") of the likelihood score of an insertion, deletion or complex change: the
    score is the ALT side minus the REF side, in nats, how much more the model expects the ALT
    haplotype than the REF haplotype around the change.

    The window (W rows of A, C, G, T logits; `bases` its bases as columns, -1 for N) holds this side's
    allele masked at `change_row`. The side is the allele's bases scored against what the model
    expects there, sum of log P(base) + H (H: the entropy of that masked position, so a base as likely
    as the model's average guess adds 0 and alleles of any length sit on one scale), plus log P(base)
    of the flank bases the two windows share within `settings.llr_flank` of the change
    (`aligned_rows`: the same reference bases, row for row; N rows add 0 on both sides). The variant's
    effect on its flanks is mostly within a few bases; farther out the sum gathers what the windows'
    different ends do to each base instead (docs/commands/score-variants.md's variant-class table measures both).
    Identical haplotypes score 0, and a deletion scores minus the insertion that undoes it (the same
    two windows, sides swapped).
    """
    row = change_row(change, settings)
    log_probs = nucleotide_log_probs(logits)
    entropy = -(np.exp(log_probs) * log_probs).sum(axis=1)
    base_log_prob = np.where(bases >= 0, log_probs[np.arange(len(bases)), np.maximum(bases, 0)], 0.0)
    allele = np.arange(row, row + len(change.ref if side == "ref" else change.alt))
    flank = aligned_rows(change, side, settings, settings.llr_flank)
    return float((base_log_prob[allele] + entropy[allele]).sum() + base_log_prob[flank].sum())


def substitution_llrs(logits: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(L, 4) log P(base) - log P(ref) for base = A, C, G, T at each position, in float64.

    `logits` are (L, 4) A, C, G, T logits and `columns` (L,) the reference bases as columns 0-3
    (`Tokenizer.columns`, -1 for N). The reference's own cell and every cell of a non-ACGT
    position are NaN, so the finite cells are exactly the 3 single-base changes of each position,
    each equal to `log_likelihood_ratio`.
    """
    acgt = logits.astype(np.float64)
    rows = np.arange(len(columns))
    llrs = acgt - acgt[rows, columns][:, None]
    llrs[rows, columns] = np.nan
    llrs[columns < 0] = np.nan
    return llrs


def mean_alternative_llr(llrs: np.ndarray) -> np.ndarray:
    """(L,) mean of the 3 LLRs in each row of `substitution_llrs` (0 where the reference is not ACGT)."""
    return np.nan_to_num(llrs, nan=0.0).sum(axis=1) / 3.0  # the reference's NaN cell adds 0
