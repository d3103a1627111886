"""The fair held-out protocol of weights/evaluate.py: which positions count, and what the k-mer baseline may see."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_config, random_model

from caduceus_cli.tokens import CADUCEUS, MASK_ID, N_ID, NUCLEOTIDE_IDS
from weights import data
from weights.data import HELDOUT, IGNORE, Interval, mask_for_mlm
from weights.evaluate import VALIDATION, choose_k, masked_base_task, model_probs, motif_task, recovered
from weights.kmer_baseline import ALPHA, K_MAX, all_counts, predict, without_slice


def random_dna(length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(NUCLEOTIDE_IDS, length).astype(np.int64)


def test_only_positions_whose_input_is_mask_are_scored_each_once():
    ids = CADUCEUS.encode("ACGTACGTAC")
    inputs, labels = ids.copy(), np.full(10, IGNORE)
    for position in (1, 7, 9):  # selected and masked: scored
        inputs[position], labels[position] = MASK_ID, ids[position]
    labels[3] = ids[3]  # selected, left unchanged: the input holds the answer
    labels[5], inputs[5] = ids[5], CADUCEUS.encode("G")[0]  # selected, randomised
    inputs[6] = MASK_ID  # selected N (label IGNORE)
    task = masked_base_task(inputs, labels, length=4)  # tiles start at 0, 4 and 6 (new from 8)
    np.testing.assert_array_equal(task.rows, [0, 1, 2])
    np.testing.assert_array_equal(task.offsets, [1, 3, 3])
    np.testing.assert_array_equal(task.bases, [1, 3, 1])  # C, T, C
    np.testing.assert_array_equal(task.windows[2], inputs[6:10])


def test_with_the_training_recipe_unchanged_and_random_positions_are_left_out():
    ids = random_dna(8192, seed=1)
    inputs, labels = mask_for_mlm(ids, np.random.default_rng(2))
    task = masked_base_task(inputs, labels, length=1024)
    scored = task.windows[task.rows, task.offsets]
    assert (scored == MASK_ID).all()
    assert len(task.bases) == np.count_nonzero((inputs == MASK_ID) & (labels != IGNORE))
    assert np.count_nonzero((labels != IGNORE) & (inputs != MASK_ID)) > 100  # these exist and are left out


def test_a_motif_is_masked_whole_and_recovered_only_when_both_bases_are_right():
    ids = CADUCEUS.encode("AAAAGTAAAAAAAAAAAAAGTA")
    task = motif_task(ids, np.array([4, 19]), length=8)
    np.testing.assert_array_equal(task.windows[0, [4, 5]], MASK_ID)  # centred in the first window
    np.testing.assert_array_equal(task.windows[1, [5, 6]], MASK_ID)  # the second ends where ids end
    assert (task.windows != MASK_ID).sum() == 12
    np.testing.assert_array_equal(task.bases, [2, 3, 2, 3])
    one_wrong = np.eye(4)[[2, 3, 2, 0]]
    assert recovered(one_wrong, task.bases) == 0.5


def test_model_probabilities_are_taken_at_the_scored_positions_across_batches():
    model = random_model(random_config("ph", d_model=16, n_layer=1))
    inputs, labels = mask_for_mlm(random_dna(5 * 64, seed=8), np.random.default_rng(9))
    task = masked_base_task(inputs, labels, length=64)
    probs = model_probs(model, task, batch=2)  # windows 0-1, 2-3, 4
    with torch.no_grad():
        logits = model.logits_conjoined(torch.from_numpy(task.windows))
    expected = torch.softmax(logits[task.rows, task.offsets][:, NUCLEOTIDE_IDS], -1).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)


def test_the_baseline_reads_masked_context_as_a_wildcard_and_never_the_base_itself():
    tables = all_counts([random_dna(5000, seed=3)], k_max=2)
    ids = CADUCEUS.encode("ACGTA")
    ids[1] = MASK_ID
    composition = (tables[0][0] + 1) / (tables[0][0] + 1).sum()
    counts = tables[1].reshape(4, 4, 4)[:, 3, :].sum(axis=0)  # left context unknown, right context T
    expected = (counts + ALPHA * composition) / (counts.sum() + ALPHA)
    np.testing.assert_allclose(predict(tables, ids, np.array([2]))[1][0], expected)
    other_centre = ids.copy()
    other_centre[2] = CADUCEUS.encode("T")[0]
    np.testing.assert_array_equal(
        predict(tables, other_centre, np.array([2]))[2], predict(tables, ids, [2])[2]
    )


def test_validation_tables_lack_exactly_the_kmers_touching_the_slice():
    sequence = random_dna(3000, seed=4)
    sequence[[100, 1150, 2000]] = N_ID
    tables = all_counts([sequence], k_max=3)
    blanked = sequence.copy()
    blanked[1000:1200] = N_ID
    for fitted, expected in zip(
        without_slice(tables, sequence, 1000, 1200), all_counts([blanked], 3), strict=True
    ):
        np.testing.assert_array_equal(fitted, expected)


@pytest.mark.parametrize(
    ("slice_kind", "k", "accuracy", "longest_accuracy"),
    [("repeat", 3, 0.971, 0.971), ("random", 0, 0.241, 0.236)],
)
def test_k_is_chosen_on_validation_data_the_counts_never_saw(slice_kind, k, accuracy, longest_accuracy):
    """A chromosome of one repeated 37-mer with a 4 kbp validation slice in it. When the slice continues
    the repeat, the longest context predicts it best. When it is random DNA, no context the counts may
    use helps, and k = 0 (base composition) is chosen; counts that kept the slice's own k-mers would
    recall 54% of its masked bases at k = 3."""
    chromosome = np.tile(random_dna(37, seed=5), 1000)
    if slice_kind == "random":
        chromosome[10_000:14_096] = random_dna(4096, seed=6)
    tables = all_counts([chromosome], k_max=3)
    chosen, scores = choose_k(tables, chromosome, Interval("chr", 10_000, 14_096), length=512)
    assert chosen == k
    assert scores[k][0] == pytest.approx(accuracy, abs=0.001)
    assert scores[3][0] == pytest.approx(longest_accuracy, abs=0.001)


def test_the_baseline_counts_chr1_without_the_heldout_interval_and_validates_clear_of_it(monkeypatch):
    chromosome = np.random.default_rng(7).choice(NUCLEOTIDE_IDS, HELDOUT.end + 1000).astype(np.uint8)
    monkeypatch.setattr(data, "read_athaliana_chr1", lambda: chromosome)
    segments = data.training_segments(relatives=False)
    assert [len(segment) for segment in segments] == [HELDOUT.start, 1000]
    np.testing.assert_array_equal(segments[1], chromosome[HELDOUT.end :])
    # without_slice needs the validation slice and 2 K_MAX bases either side inside one training segment
    assert VALIDATION.contig == HELDOUT.contig
    assert VALIDATION.start - 2 * K_MAX >= 0 and VALIDATION.end + 2 * K_MAX <= HELDOUT.start
