"""Window geometry and score definitions of `caduceus_cli.scoring` (pure numpy, no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caduceus_cli.errors import UsageError
from caduceus_cli.scoring import (
    BASE_ID,
    ScorePlan,
    Snv,
    check_window,
    classify_alleles,
    cosine_distance,
    flank_rows,
    l2_distance,
    log_likelihood_ratio,
    masked,
    nucleotide_probs,
    tile_centre,
    unmasked_tile,
    variant_window,
)
from caduceus_cli.tokens import MASK_ID, tokenize


@pytest.mark.parametrize("window", [0, 1, 3, 129, -2])
def test_window_must_be_even_and_at_least_two(window):
    with pytest.raises(UsageError, match="even"):
        check_window(window)


def test_variant_sits_at_index_half_window():
    start, end = variant_window(100, 8)
    assert (start, end) == (96, 104)
    assert 100 - start == 4


@pytest.mark.parametrize("window", [2, 4, 6, 10, 64])
def test_unmasked_tiles_put_every_position_in_one_central_half(window):
    centre = tile_centre(window)
    starts = set()
    for p0 in range(0, 5 * window):
        start, index = unmasked_tile(p0, window)
        assert start + index == p0
        assert centre.start <= index < centre.stop
        starts.add(start)
    half = window // 2
    assert all((start + centre.start) % half == 0 for start in starts)
    assert len(starts) == 5 * window // half


def test_unmasked_tile_keeps_a_quarter_window_from_the_edges():
    for p0 in range(1000):
        start, index = unmasked_tile(p0, 64)
        assert 16 <= index < 48


def test_flank_rows_are_clipped_to_the_window():
    assert flank_rows(64, 4) == slice(28, 37)
    assert flank_rows(64, 768) == slice(0, 64)
    assert flank_rows(64, 0) == slice(32, 33)


def test_llr_is_alt_minus_ref_logit_and_a_log_probability_ratio():
    logits = np.zeros(16, dtype=np.float32)
    logits[BASE_ID["A"]], logits[BASE_ID["G"]] = 2.0, -1.0
    assert log_likelihood_ratio(logits, "A", "G") == pytest.approx(-3.0)
    probs = nucleotide_probs(logits)
    assert math.log(probs["G"] / probs["A"]) == pytest.approx(-3.0)


def test_nucleotide_probs_ignore_non_nucleotide_logits():
    logits = np.full(16, 50.0, dtype=np.float32)
    logits[list(BASE_ID.values())] = [0.0, 0.0, np.log(2.0), 0.0]
    probs = nucleotide_probs(logits)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs == pytest.approx({"A": 0.2, "C": 0.2, "G": 0.4, "T": 0.2})


def test_distances():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert cosine_distance(a, b) == pytest.approx(1.0)
    assert cosine_distance(a, 3 * a) == pytest.approx(0.0)
    assert cosine_distance(a, -a) == pytest.approx(2.0)
    assert l2_distance(a, b) == pytest.approx(math.sqrt(5.0))


def test_masked_replaces_only_the_centre():
    ids = tokenize("ACGTACGT")
    out = masked(ids, 4)
    assert out[4] == MASK_ID and np.array_equal(np.delete(out, 4), np.delete(ids, 4))
    assert ids[4] != MASK_ID  # the input is not modified


def test_plan_shares_one_window_per_position_and_one_tile_per_central_half():
    plan = ScorePlan(("llr", "llr-unmasked", "emb-cos"), probs=False, window=8, flank=2)
    for alt in "CGT":
        plan.add("chr1", 10, alt)
    plan.add("chr1", 11, "A")  # same tile as position 10 (central half [8, 12))
    plan.add("chr1", 12, "A")  # next tile
    assert [key for key in plan.logit_jobs if key[0] == "masked"] == [
        ("masked", "chr1", 10),
        ("masked", "chr1", 11),
        ("masked", "chr1", 12),
    ]
    assert [key for key in plan.logit_jobs if key[0] == "tile"] == [("tile", "chr1", 6), ("tile", "chr1", 10)]
    assert sum(key[0] == "ref" for key in plan.embed_jobs) == 3
    assert sum(key[0] == "alt" for key in plan.embed_jobs) == 5


def test_plan_builds_windows_and_reads_scores_from_the_right_rows():
    window = 8
    plan = ScorePlan(("llr", "llr-unmasked", "emb-l2"), probs=True, window=window, flank=1)
    plan.add("c", 10, "G")
    reference = tokenize("ACGTACGT")

    ids, rows = plan.window_for(("masked", "c", 10), reference)
    assert ids[4] == MASK_ID and rows == slice(4, 5)
    assert plan.window_span(("masked", "c", 10)) == ("c", 6, 14)
    ids, rows = plan.window_for(("alt", "c", 10, "G"), reference)
    assert ids[4] == BASE_ID["G"] and rows == slice(3, 6)
    assert plan.window_span(("tile", "c", 6)) == ("c", 6, 14)
    ids, rows = plan.window_for(("tile", "c", 6), reference)
    assert rows.tolist() == [4]  # the variant's row only (position 10 of the tile starting at 6)

    masked_logits = np.zeros((1, 16), dtype=np.float32)
    masked_logits[0, BASE_ID["A"]], masked_logits[0, BASE_ID["G"]] = 1.0, -2.0
    tile_logits = np.zeros((1, 16), dtype=np.float32)
    tile_logits[0, BASE_ID["G"]] = 5.0
    plan.keep(("masked", "c", 10), masked_logits)
    plan.keep(("tile", "c", 6), tile_logits)
    plan.keep(("ref", "c", 10), np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0]], dtype=np.float32))
    plan.keep(("alt", "c", 10, "G"), np.array([[1.0, 3.0], [1.0, 3.0], [1.0, 3.0]], dtype=np.float32))

    scores = plan.allele_scores("c", 10, "A", "G")
    assert scores["llr"] == pytest.approx(-3.0)
    assert scores["llr-unmasked"] == pytest.approx(5.0)
    assert scores["emb-l2"] == pytest.approx(3.0)
    assert scores["p-ref"] + scores["p-alt"] < 1.0
    assert math.log(scores["p-alt"] / scores["p-ref"]) == pytest.approx(-3.0)


# --- alleles --------------------------------------------------------------------------------


def test_snvs_are_scored_and_ref_is_compared_case_insensitively():
    assert classify_alleles("a", ("G", "t"), "A", 99) == [Snv(99, "A", "G"), Snv(99, "A", "T")]
    assert classify_alleles("A", ("G",), "a", 99) == [Snv(99, "A", "G")]


@pytest.mark.parametrize(
    ("ref", "alts", "fasta", "expected"),
    [
        ("A", ("G", "C"), None, ["contig_missing", "contig_missing"]),
        ("A", ("G",), "C", ["ref_mismatch"]),
        ("AC", ("A",), "AT", ["ref_mismatch"]),
        ("A", ("<DEL>", "*", "A[chr2:10[", "A."), "A", ["symbolic"] * 4),
        ("A", ("N", "R"), "A", ["not_acgt", "not_acgt"]),
        ("N", ("A",), "N", ["not_acgt"]),
        ("AC", ("A",), "AC", ["indel"]),
        ("A", ("AT",), "A", ["indel"]),
        ("AC", ("GT",), "AC", ["mnv"]),
        ("A", ("A", "a"), "A", ["alt_is_ref", "alt_is_ref"]),
        ("AC", ("AC",), "AC", ["alt_is_ref"]),
    ],
)
def test_unscorable_alleles_get_their_flag(ref, alts, fasta, expected):
    assert classify_alleles(ref, alts, fasta, 0) == expected


def test_a_padded_snv_in_a_multiallelic_record_is_scored_at_the_changed_base():
    alleles = classify_alleles("ACT", ("AGT", "A", "GCA"), "ACT", 50)
    assert alleles == [Snv(51, "C", "G"), "indel", "mnv"]
