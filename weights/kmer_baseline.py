"""k-mer baseline for held-out masked-base prediction: a base from its +-k context.

For every k up to K_MAX we count, over the model's training sequence, how often each centre base
follows each context (k bases left and k right). A position is predicted from the context it has in
the model's input: context bases the model cannot read ([MASK], N, beyond the window's ends) are
wildcards, summed over their four values; bases the masking randomised are read as the model reads
them. So the baseline has the same information as the model, within +-k.

Smoothing: interpolated Dirichlet back-off, p_k(b | ctx) = (n_k(ctx, b) + ALPHA * p_{k-1}(b | ctx'))
/ (n_k(ctx) + ALPHA), where ctx' drops the outermost base on each side and p_0 is the add-one base
frequency. An unseen context therefore predicts like the next shorter one, which is what add-one
smoothing gets badly wrong for long contexts.

Counts are taken once at K_MAX (4**12 contexts x 4 bases, ~540 MB) and summed down for smaller k.
Which k to use is chosen on a validation slice of the training sequence whose k-mers are taken out
of the counts (`without_slice`); weights/evaluate.py does that and reports every k.
"""

from __future__ import annotations

import numpy as np

from caduceus_cli.tokens import A_ID
from weights.data import kmer_codes

K_MAX = 6
ALPHA = 2.0
UNKNOWN = -1  # a context base the predictor may not read


def _split(codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(context, centre) from codes of (2k+1)-mers: the k bases either side, and the middle base."""
    right_bits = np.uint64(2 * k)
    centre = (codes >> right_bits) & np.uint64(3)
    context = ((codes >> (right_bits + np.uint64(2))) << right_bits) | (codes & np.uint64(4**k - 1))
    return context, centre


def context_counts(segments: list[np.ndarray], k: int) -> np.ndarray:
    """(4**(2k), 4) counts of each centre base A, C, G, T after each +-k context over the segments."""
    counts = np.zeros(4 ** (2 * k) * 4, dtype=np.int64)
    for segment in segments:
        codes, valid = kmer_codes(segment, 2 * k + 1)
        context, centre = _split(codes[valid], k)
        counts += np.bincount((context * np.uint64(4) + centre).astype(np.int64), minlength=len(counts))
    return counts.reshape(-1, 4)


def shorter_counts(counts: np.ndarray, k: int) -> np.ndarray:
    """Counts for +-(k-1) contexts from those for +-k, by summing out the outermost base on each side."""
    side = 4 ** (k - 1)
    return counts.reshape(4, side, side, 4, 4).sum(axis=(0, 3)).reshape(-1, 4)


def all_counts(segments: list[np.ndarray], k_max: int = K_MAX) -> list[np.ndarray]:
    """[counts for k = 0, 1, ..., k_max]; k = 0 is the plain base composition, shape (1, 4)."""
    tables = [context_counts(segments, k_max)]
    for k in range(k_max, 0, -1):
        tables.append(shorter_counts(tables[-1], k))
    return tables[::-1]


def without_slice(tables: list[np.ndarray], ids: np.ndarray, start: int, end: int) -> list[np.ndarray]:
    """The tables less every counted k-mer that touches ids[start:end]: as if that slice were N.

    `tables` must have been counted over a segment that holds ids[start - 2 K_MAX : end + 2 K_MAX]
    contiguously (a (2k+1)-mer touching the slice lies inside that stretch, and every k-mer inside the
    stretch touches the slice).
    """
    margin = 2 * (len(tables) - 1)
    touching = all_counts([ids[max(0, start - margin) : end + margin]], len(tables) - 1)
    return [full - near for full, near in zip(tables, touching, strict=True)]


def predict(tables: list[np.ndarray], ids: np.ndarray, positions: np.ndarray) -> list[np.ndarray]:
    """[(len(positions), 4) probabilities of A, C, G, T for k = 0..k_max] at the given positions of ids.

    The base at a position itself is never read. A context base that is not A/C/G/T in `ids` ([MASK],
    N) or lies beyond its ends is unknown: the counts are summed over its four values (a wildcard).
    """
    k_max = len(tables) - 1
    bases = ids.astype(np.int64) - A_ID
    bases = np.where((bases >= 0) & (bases < 4), bases, UNKNOWN)
    padded = np.concatenate([np.full(k_max, UNKNOWN), bases, np.full(k_max, UNKNOWN)])
    centres = np.asarray(positions) + k_max  # indices into padded
    composition = tables[0][0] + 1.0
    probs = [np.broadcast_to(composition / composition.sum(), (len(centres), 4))]
    for k in range(1, k_max + 1):
        table = tables[k].reshape((4,) * (2 * k) + (4,))
        contexts = [np.r_[padded[c - k : c], padded[c + 1 : c + k + 1]] for c in centres]
        counts = np.array([_wildcard_counts(table, context) for context in contexts], dtype=np.float64)
        counts = counts.reshape(-1, 4)
        probs.append((counts + ALPHA * probs[-1]) / (counts.sum(axis=1, keepdims=True) + ALPHA))
    return probs


def _wildcard_counts(table: np.ndarray, context: np.ndarray) -> np.ndarray:
    """(4,) counts of each centre base after `context` (2k bases), summed over its unknown bases."""
    index = tuple(slice(None) if base == UNKNOWN else int(base) for base in context)
    return table[index].reshape(-1, 4).sum(axis=0)


def accuracy_and_cross_entropy(probs: np.ndarray, bases: np.ndarray) -> tuple[float, float]:
    """Fraction of argmax hits and mean -ln p(true base) in nats; bases are 0..3 for A, C, G, T."""
    picked = probs[np.arange(len(bases)), bases]
    return float((probs.argmax(axis=1) == bases).mean()), float(-np.log(picked).mean())
