"""Window geometry, window jobs and score definitions of `caduceus_cli.scoring` (no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caduceus_cli.alleles import Change
from caduceus_cli.errors import UsageError
from caduceus_cli.scoring.geometry import aligned_rows, change_row, fits_window, tile_centre, unmasked_tile
from caduceus_cli.scoring.outcomes import Flagged, Placed, scored_alleles
from caduceus_cli.scoring.plan import GridTile, HaplotypeWindow, MaskedWindow, ScorePlan
from caduceus_cli.scoring.scores import (
    COLUMN,
    cosine_distance,
    haplotype_side,
    l2_distance,
    log_likelihood_ratio,
    nucleotide_probs,
)
from caduceus_cli.scoring.settings import Settings, check_window
from caduceus_cli.tokens import CADUCEUS, MASK_ID


@pytest.mark.parametrize("window", [0, 1, 3, 129, -2])
def test_window_must_be_even_and_at_least_two(window):
    with pytest.raises(UsageError, match="even"):
        check_window(window)


def settings(window: int = 8, flank: int = 2, scores=("llr",), probs: bool = False, index=None) -> Settings:
    return Settings(
        scores=tuple(scores), probs=probs, window=window, flank=flank, on_ref_mismatch="flag", variant_index=index
    )


def test_a_snv_sits_at_index_half_window_or_the_variant_index():
    assert change_row(Change(100, "A", "G"), settings(8)) == 4
    assert change_row(Change(100, "A", "G"), settings(512, index=255)) == 255  # PlantCaduceus' zero-shot


@pytest.mark.parametrize(
    ("change", "row"),
    [(Change(0, "AC", "GT"), 3), (Change(0, "ACG", "GTA"), 3), (Change(0, "", "TT"), 3), (Change(0, "ACG", ""), 3),
     (Change(0, "ACGT", "G"), 2)],
)  # fmt: skip
def test_longer_changes_are_centred_on_the_variant_index(change, row):
    """The block's middle sits at W//2 (for an even span, its second half starts there), so its mirror
    image on the other strand sits at most one row away."""
    assert change_row(change, settings(8)) == row


def test_changes_longer_than_half_the_window_do_not_fit():
    assert fits_window(Change(50, "A" * 4, ""), settings(8))
    assert not fits_window(Change(50, "A" * 5, ""), settings(8))
    assert not fits_window(Change(50, "", "ACG"), settings(8, index=0))  # the block would start before row 0


def test_aligned_rows_pair_the_same_reference_bases_in_both_windows():
    """A 2-base deletion in an 8-base window: REF rows 3-4 hold the deleted bases, so REF row 5 and ALT
    row 3 hold the same reference base, and so on; the left flank lines up as it is."""
    deletion, s = Change(100, "GG", ""), settings(8)
    ref, alt = aligned_rows(deletion, "ref", s), aligned_rows(deletion, "alt", s)
    assert ref.tolist() == [0, 1, 2, 5, 6, 7] and alt.tolist() == [0, 1, 2, 3, 4, 5]
    assert aligned_rows(deletion, "ref", s, flank=1).tolist() == [2, 5]
    snv = Change(100, "A", "G")  # a substitution's own rows line up too: the SNV's flank of today
    assert aligned_rows(snv, "ref", s, flank=2).tolist() == [2, 3, 4, 5, 6]
    assert aligned_rows(snv, "alt", s, flank=99).tolist() == list(range(8))


def llr(ref_logits, ref_bases, alt_logits, alt_bases, change, s) -> float:
    """The indel score as ScorePlan reads it: the ALT window's side minus the REF window's."""
    return haplotype_side(alt_logits, alt_bases, change, "alt", s) - haplotype_side(ref_logits, ref_bases, change, "ref", s)


def test_haplotype_llr_of_identical_windows_is_zero_and_swapping_sides_negates_it():
    rng = np.random.default_rng(3)
    deletion, s = Change(100, "GG", ""), settings(8)
    ref_logits, alt_logits = rng.normal(size=(8, 4)), rng.normal(size=(8, 4))
    ref_bases, alt_bases = rng.integers(0, 4, 8), rng.integers(0, 4, 8)
    score = llr(ref_logits, ref_bases, alt_logits, alt_bases, deletion, s)
    undo = Change(100, "", "GG")  # the insertion that undoes it: the same two windows, sides swapped
    assert llr(alt_logits, alt_bases, ref_logits, ref_bases, undo, s) == pytest.approx(-score, abs=1e-12)
    assert llr(ref_logits, ref_bases, ref_logits, ref_bases, Change(100, "GG", "GG"), s) == 0.0


def test_haplotype_llr_scores_an_allele_base_against_the_models_expectation():
    """One inserted base where the model is sure of it: log P + entropy, close to 0 but above; flanks equal."""
    insertion, s = Change(100, "", "A"), settings(4)
    row = change_row(insertion, s)
    logits = np.zeros((4, 4))
    bases = np.array([1, 2, 0, 3])
    alt = logits.copy()
    alt[row] = [math.log(0.7), math.log(0.1), math.log(0.1), math.log(0.1)]
    expected = math.log(0.7) - (0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1))
    # the REF window's flank rows after the change sit one row further right; with equal logits they cancel
    assert llr(logits, bases, alt, bases, insertion, s) == pytest.approx(expected)


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


def test_llr_is_alt_minus_ref_logit_and_a_log_probability_ratio():
    logits = np.zeros(4, dtype=np.float32)  # A, C, G, T
    logits[COLUMN["A"]], logits[COLUMN["G"]] = 2.0, -1.0
    assert log_likelihood_ratio(logits, "A", "G") == pytest.approx(-3.0)
    probs = nucleotide_probs(logits)
    assert math.log(probs["G"] / probs["A"]) == pytest.approx(-3.0)


def test_nucleotide_probs_are_a_softmax_over_a_c_g_t():
    probs = nucleotide_probs(np.array([0.0, 0.0, np.log(2.0), 0.0], dtype=np.float32))
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs == pytest.approx({"A": 0.2, "C": 0.2, "G": 0.4, "T": 0.2})


def test_distances():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert cosine_distance(a, b) == pytest.approx(1.0)
    assert cosine_distance(a, 3 * a) == pytest.approx(0.0)
    assert cosine_distance(a, -a) == pytest.approx(2.0)
    assert l2_distance(a, b) == pytest.approx(math.sqrt(5.0))


def test_masked_window_replaces_only_the_variant():
    plan = ScorePlan(settings(8, 2))
    plan.add("c", Change(10, "A", "G"))
    ids = CADUCEUS.encode("ACGTACGT")
    (key,) = plan.logit_jobs
    out, rows = plan.window_for(key, ids)
    assert out[4] == MASK_ID and np.array_equal(np.delete(out, 4), np.delete(ids, 4)) and rows.tolist() == [4]
    assert ids[4] != MASK_ID  # the input is not modified


def test_plan_shares_one_window_per_position_and_one_tile_per_central_half():
    plan = ScorePlan(settings(8, 2, ("llr", "llr-unmasked", "emb-cos")))
    for alt in "CGT":
        plan.add("chr1", Change(10, "A", alt))
    plan.add("chr1", Change(11, "A", "C"))  # same tile as position 10 (central half [8, 12))
    plan.add("chr1", Change(12, "A", "C"))  # next tile
    assert [job for job in plan.logit_jobs if isinstance(job, MaskedWindow)] == [
        MaskedWindow("chr1", 6, (4,)),
        MaskedWindow("chr1", 7, (4,)),
        MaskedWindow("chr1", 8, (4,)),
    ]
    assert [job for job in plan.logit_jobs if isinstance(job, GridTile)] == [GridTile("chr1", 6), GridTile("chr1", 10)]
    assert sum(job.side == "ref" for job in plan.embed_jobs) == 3
    assert sum(job.side == "alt" for job in plan.embed_jobs) == 5


def test_plan_builds_windows_and_reads_scores_from_the_right_rows():
    plan = ScorePlan(settings(8, 1, ("llr", "llr-unmasked", "emb-l2"), probs=True))
    snv = Change(10, "A", "G")
    plan.add("c", snv)
    reference = CADUCEUS.encode("ACGTACGT")
    masked, tile, ref_emb, alt_emb = MaskedWindow("c", 6, (4,)), GridTile("c", 6), *plan.embed_jobs

    ids, rows = plan.window_for(masked, reference)
    assert ids[4] == MASK_ID and rows.tolist() == [4]
    assert plan.window_span(masked) == ("c", 6, 14)
    ids, rows = plan.window_for(alt_emb, reference)
    assert ids[4] == CADUCEUS.base_ids[COLUMN["G"]] and rows.tolist() == [3, 4, 5]
    assert plan.window_span(tile) == ("c", 6, 14)
    ids, rows = plan.window_for(tile, reference)
    assert rows.tolist() == [4]  # the variant's row only (position 10 of the tile starting at 6)

    masked_logits = np.zeros((1, 4), dtype=np.float32)
    masked_logits[0, COLUMN["A"]], masked_logits[0, COLUMN["G"]] = 1.0, -2.0
    tile_logits = np.zeros((1, 4), dtype=np.float32)
    tile_logits[0, COLUMN["G"]] = 5.0
    plan.keep(masked, masked_logits)
    plan.keep(tile, tile_logits)
    plan.keep(ref_emb, np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0]], dtype=np.float32))
    plan.keep(alt_emb, np.array([[1.0, 3.0], [1.0, 3.0], [1.0, 3.0]], dtype=np.float32))

    scores = plan.allele_scores("c", [snv])
    assert scores["llr"] == pytest.approx(-3.0)
    assert scores["llr-unmasked"] == pytest.approx(5.0)
    assert scores["emb-l2"] == pytest.approx(3.0)
    assert scores["p-ref"] + scores["p-alt"] < 1.0
    assert math.log(scores["p-alt"] / scores["p-ref"]) == pytest.approx(-3.0)


def test_an_mnv_masks_its_changed_bases_together_and_sums_their_llrs():
    plan = ScorePlan(settings(8, 1, ("llr",), probs=True))
    mnv = Change(10, "ACG", "TCA")  # the middle base is shared: not masked, not scored
    plan.add("c", mnv)
    (key,) = plan.logit_jobs
    assert key == MaskedWindow("c", 7, (3, 5))
    ids, rows = plan.window_for(key, CADUCEUS.encode("ACGTACGT"))
    assert (ids[[3, 5]] == MASK_ID).all() and ids[4] != MASK_ID
    logits = np.log(np.array([[0.4, 0.1, 0.1, 0.4], [0.1, 0.1, 0.2, 0.6]]))
    plan.keep(key, logits)
    scores = plan.allele_scores("c", [mnv])
    assert scores["llr"] == pytest.approx(math.log(0.4 / 0.4) + math.log(0.1 / 0.2))
    assert scores["p-ref"] == pytest.approx(0.4 * 0.2) and scores["p-alt"] == pytest.approx(0.4 * 0.1)


def test_an_indel_runs_its_ref_and_alt_haplotypes_with_their_alleles_masked():
    plan = ScorePlan(settings(8, 1, ("llr",)))
    deletion = Change(10, "GG", "")
    plan.add("c", deletion)
    ref_key, alt_key = plan.logit_jobs
    assert (ref_key, alt_key) == (HaplotypeWindow("ref", "c", 7, deletion), HaplotypeWindow("alt", "c", 7, deletion))
    reference = CADUCEUS.encode("ACGGGTACGT")  # starts at 7: rows 3-4 are the deleted GG at 10-11
    assert plan.window_span(ref_key) == ("c", 7, 15) and plan.window_span(alt_key) == ("c", 7, 17)
    ids, rows = plan.window_for(ref_key, reference[:8])
    assert rows is None and (ids[[3, 4]] == MASK_ID).all() and np.array_equal(ids[5:], reference[5:8])
    ids, _ = plan.window_for(alt_key, reference)
    assert np.array_equal(ids, np.concatenate([reference[:3], reference[5:10]]))  # nothing of ALT to mask


def test_a_change_of_nothing_scores_zero_without_any_window():
    plan = ScorePlan(settings(8, 1, ("llr", "emb-cos")))
    plan.add("c", Change(10, "", ""))
    assert not plan.logit_jobs and not plan.embed_jobs
    assert plan.allele_scores("c", [Change(10, "", "")]) == {"llr": 0.0, "emb-cos": 0.0}


class _Fasta:
    """A one-contig stand-in for `io.fasta.Fasta`: what `scored_alleles` reads."""

    def __init__(self, sequence: str):
        self.sequence, self.contigs = sequence, {"c": len(sequence)}

    def fetch(self, contig: str, start: int, end: int) -> str:
        return self.sequence[max(start, 0) : end]


def test_each_alt_is_placed_at_its_scored_places_or_flagged_with_its_reason():
    fasta = _Fasta("ACGTAAAAACGT")
    snv, in_repeat, long_deletion, symbolic = scored_alleles(
        fasta, "c", 4, "AAAAA", ["GAAAA", "AAAA", "A", "<DEL>"], settings(6, 1)
    )
    assert snv == Placed((Change(4, "A", "G"),)) and (snv.kind, snv.flag) == ("snv", ".")
    # one A deleted anywhere in the run of five: scored at the run's middle
    assert in_repeat == Placed((Change(6, "A", ""),)) and in_repeat.kind == "del"
    assert long_deletion == Flagged("too_long") and (long_deletion.kind, long_deletion.flag) == (".", "too_long")
    assert symbolic == Flagged("symbolic")
    assert scored_alleles(fasta, None, 4, "A", ["G"], settings(8, 1)) == [Flagged("contig_missing")]
