"""k-mer baseline for held-out masked-base prediction: the centre base from its +-k context.

For every k up to K_MAX we count, over the training segments, how often each centre base follows
each context (k bases left and k right). A held-out position is predicted from the counts of its
true, unmasked context (an advantage over the model, whose inputs have 15% of positions masked).

Smoothing: interpolated Dirichlet back-off, p_k(b | ctx) = (n_k(ctx, b) + ALPHA * p_{k-1}(b | ctx'))
/ (n_k(ctx) + ALPHA), where ctx' drops the outermost base on each side and p_0 is the add-one base
frequency. An unseen context therefore predicts like the next shorter one, which is what add-one
smoothing gets badly wrong for long contexts.

Counts are taken once at K_MAX (4**12 contexts x 4 bases, ~540 MB) and summed down for smaller k.

    python -m weights.kmer_baseline        # prints accuracy and cross-entropy for k = 0..K_MAX
"""

from __future__ import annotations

import numpy as np

from caduceus_cli.tokens import A_ID, N_ID
from weights.data import IGNORE, heldout_ids, heldout_masked, kmer_codes, training_segments

K_MAX = 6
ALPHA = 2.0


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


def predict(tables: list[np.ndarray], ids: np.ndarray, positions: np.ndarray) -> list[np.ndarray]:
    """[(len(positions), 4) probabilities of A, C, G, T for k = 0..k_max] at the given positions of ids.

    Contexts running off the ends of `ids` or containing N fall back to the next shorter k.
    """
    base = tables[0][0] + 1.0
    probs = [np.broadcast_to(base / base.sum(), (len(positions), 4))]
    for k in range(1, len(tables)):
        padded = np.concatenate([np.full(k, N_ID), ids, np.full(k, N_ID)])
        codes, valid = kmer_codes(padded, 2 * k + 1)  # entry p covers ids[p - k : p + k + 1]
        context, _ = _split(codes[positions], k)
        counts = tables[k][context.astype(np.int64)]
        smoothed = (counts + ALPHA * probs[-1]) / (counts.sum(axis=1, keepdims=True) + ALPHA)
        probs.append(np.where(valid[positions, None], smoothed, probs[-1]))
    return probs


def accuracy_and_cross_entropy(probs: np.ndarray, bases: np.ndarray) -> tuple[float, float]:
    """Fraction of argmax hits and mean -ln p(true base) in nats; bases are 0..3 for A, C, G, T."""
    picked = probs[np.arange(len(bases)), bases]
    return float((probs.argmax(axis=1) == bases).mean()), float(-np.log(picked).mean())


def main() -> None:
    _, labels = heldout_masked()
    positions = np.flatnonzero(labels != IGNORE)
    bases = labels[positions] - A_ID
    print(f"held-out masked positions: {len(positions)}; counting +-{K_MAX} contexts over training data")
    tables = all_counts(training_segments())
    print(f"{'k':>2}  {'accuracy':>8}  {'cross-entropy (nats)':>20}")
    for k, probs in enumerate(predict(tables, heldout_ids(), positions)):
        accuracy, cross_entropy = accuracy_and_cross_entropy(probs, bases)
        print(f"{k:>2}  {accuracy:8.4f}  {cross_entropy:20.4f}")


if __name__ == "__main__":
    main()
