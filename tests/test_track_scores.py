"""Per-base scores and ISM tables from conjoined logits (`caduceus_cli.scoring.tracks`, `pipelines.ism`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import random_config, random_model

from caduceus_cli.alleles import Change
from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.pipelines.ism import ISM_COLUMNS, ISM_MAX_BASES, check_ism_region, ism_table
from caduceus_cli.scoring.geometry import tile_centre, unmasked_tile
from caduceus_cli.scoring.plan import ScorePlan
from caduceus_cli.scoring.scores import log_likelihood_ratio, nucleotide_probs, substitution_llrs
from caduceus_cli.scoring.settings import Settings
from caduceus_cli.scoring.tracks import TRACK_SCORES, track_scores
from caduceus_cli.tokens import CADUCEUS, NUCLEOTIDE_IDS


def _logits(acgt_rows) -> np.ndarray:
    """(L, 4) float32 A, C, G, T logits, what the engine hands the scores."""
    return np.array(acgt_rows, dtype=np.float32)


def _bases(text: str) -> np.ndarray:
    """Reference bases as the scores take them: columns 0-3 of A, C, G, T, -1 for N."""
    return CADUCEUS.columns(CADUCEUS.encode(text))


def test_ref_logprob_is_the_log_of_the_reference_probability_over_acgt():
    logits = _logits([[0.0, 0.0, math.log(2.0), 0.0], [1.0, -2.0, 0.5, 3.0]])
    values = track_scores(logits, _bases("GT"), ("ref-logprob",))
    assert values["ref-logprob"][0] == pytest.approx(math.log(0.4))
    for row, ref in enumerate("GT"):
        assert values["ref-logprob"][row] == pytest.approx(math.log(nucleotide_probs(logits[row])[ref]))


def test_entropy_is_in_nats_over_acgt():
    logits = _logits([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, math.log(2.0), 0.0], [30.0, 0.0, 0.0, 0.0]])
    entropy = track_scores(logits, _bases("ACG"), ("entropy",))["entropy"]
    assert entropy[0] == pytest.approx(math.log(4.0))
    assert entropy[1] == pytest.approx(-(3 * 0.2 * math.log(0.2) + 0.4 * math.log(0.4)))
    assert entropy[2] == pytest.approx(0.0, abs=1e-6)


def test_llr_min_and_mean_summarise_the_three_single_base_changes():
    logits = _logits([[2.0, -1.0, 0.5, 1.0]])
    values = track_scores(logits, _bases("A"), ("llr-min", "llr-mean"))
    assert values["llr-min"][0] == pytest.approx(-3.0)  # A -> C
    assert values["llr-mean"][0] == pytest.approx((-3.0 - 1.5 - 1.0) / 3)
    assert list(values) == ["llr-min", "llr-mean"]


def test_the_reference_base_never_counts_as_its_own_alternative():
    logits = _logits([[0.0, 1.0, 2.0, 3.0]])  # every alternative of T is less likely than T
    values = track_scores(logits, _bases("T"), ("llr-min", "llr-mean"))
    assert values["llr-min"][0] == pytest.approx(-3.0)
    assert values["llr-mean"][0] == pytest.approx(-2.0)


def test_scores_are_float32_arrays_in_the_requested_order():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 4)).astype(np.float32)
    values = track_scores(logits, _bases("ACGTACG"))
    assert list(values) == list(TRACK_SCORES)
    assert all(v.dtype == np.float32 and v.shape == (7,) for v in values.values())


def test_positions_without_an_acgt_reference_have_no_value():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 4)).astype(np.float32)
    for name, values in track_scores(logits, _bases("ANCN")).items():
        assert np.isnan(values[[1, 3]]).all(), name
        assert np.isfinite(values[[0, 2]]).all(), name


def test_an_unknown_track_score_is_a_usage_error_naming_the_choices():
    with pytest.raises(UsageError, match="llr-max.*ref-logprob, entropy, llr-min, llr-mean"):
        track_scores(_logits([[0.0] * 4]), _bases("A"), ("llr-max",))


def test_substitution_llrs_equal_the_variant_llr_of_every_snv():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 4)).astype(np.float32)
    llrs = substitution_llrs(logits, _bases("ACGT"))
    for row, ref in enumerate("ACGT"):
        for column, alt in enumerate("ACGT"):
            if alt == ref:
                assert math.isnan(llrs[row, column])
            else:
                assert llrs[row, column] == log_likelihood_ratio(logits[row], ref, alt)


def test_ism_rows_list_three_alternatives_per_base_with_one_based_positions():
    logits = _logits([[2.0, -1.0, 0.5, 1.0], [0.0] * 4, [0.0, 1.0, 2.0, 3.0]])
    table = ism_table(logits, _bases("ANT"), "chr2", 99)
    assert (table.reference, table.start, table.end) == ("ANT", 99, 102)
    rows = list(table.rows())
    assert len(ISM_COLUMNS) == len(rows[0])
    assert rows == [
        ("chr2", 100, "A", "C", -3.0, 2.0, -1.0),
        ("chr2", 100, "A", "G", -1.5, 2.0, 0.5),
        ("chr2", 100, "A", "T", -1.0, 2.0, 1.0),
        # position 101 is N: no rows
        ("chr2", 102, "T", "A", -3.0, 3.0, 0.0),
        ("chr2", 102, "T", "C", -2.0, 3.0, 1.0),
        ("chr2", 102, "T", "G", -1.0, 3.0, 2.0),
    ]


def test_unmasked_ism_and_track_values_equal_score_variants_llr_unmasked():
    """One conjoined pass over a tile of a (tiny, random) model: the ISM rows and the llr-min track
    read from it give exactly the `llr-unmasked` that score-variants computes for the same SNVs."""
    window = 16
    model = random_model(random_config("ph"), seed=3)
    reference = "ACGTTGCAAGCTTACGGATCCATGACGTACGT"
    ids = CADUCEUS.encode(reference)
    p0 = 20
    start, _ = unmasked_tile(p0, window)
    centre = tile_centre(window)
    tile_ids = ids[start : start + window]
    with torch.no_grad():
        tile_logits = model.logits_conjoined(torch.from_numpy(tile_ids)[None])[0].numpy()[:, NUCLEOTIDE_IDS]

    plan = ScorePlan(Settings(scores=("llr-unmasked",), probs=False, window=window, flank=0, on_ref_mismatch="flag"))
    ref = reference[p0]
    for alt in "ACGT".replace(ref, ""):
        plan.add("chr1", Change(p0, ref, alt))
    for key in plan.logit_jobs:
        window_ids, rows = plan.window_for(key, tile_ids)
        with torch.no_grad():
            plan.keep(key, model.logits_conjoined(torch.from_numpy(window_ids)[None])[0].numpy()[rows][:, NUCLEOTIDE_IDS])

    tile_bases = CADUCEUS.columns(tile_ids)
    table = ism_table(tile_logits[centre], tile_bases[centre], "chr1", start + centre.start)
    ism_llrs = {alt: llr for _, pos, _, alt, llr, _, _ in table.rows() if pos == p0 + 1}
    expected = {alt: plan.allele_scores("chr1", [Change(p0, ref, alt)])["llr-unmasked"] for alt in ism_llrs}
    assert ism_llrs == expected

    track = track_scores(tile_logits[centre], tile_bases[centre], ("llr-min",))["llr-min"]
    assert track[p0 - start - centre.start] == np.float32(min(expected.values()))


def test_an_ism_region_holds_one_to_ism_max_bases():
    check_ism_region("chr1", 0, 1)
    check_ism_region("chr1", 100, 100 + ISM_MAX_BASES)
    with pytest.raises(InputError, match="chr1:11-10: the region is empty"):
        check_ism_region("chr1", 10, 10)
    with pytest.raises(InputError, match="chr1:1-10001: 10,001 bp; ism takes regions of at most 10,000 bp"):
        check_ism_region("chr1", 0, ISM_MAX_BASES + 1)


def test_masked_ism_from_the_centre_rows_of_masked_windows_equals_score_variants_llr():
    window = 16
    model = random_model(random_config("ph"), seed=4)
    reference = "ACGTTGCAAGCTTACGGATCCATGACGTACGT"
    ids = CADUCEUS.encode(reference)
    plan = ScorePlan(Settings(scores=("llr",), probs=False, window=window, flank=0, on_ref_mismatch="flag"))
    positions = range(8, 12)
    for p0 in positions:
        plan.add("chr1", Change(p0, reference[p0], "A" if reference[p0] != "A" else "C"))
    centre_rows = []
    for key in plan.logit_jobs:
        start = key.start  # the window's first reference base
        window_ids, rows = plan.window_for(key, ids[start : start + window])
        with torch.no_grad():
            output = model.logits_conjoined(torch.from_numpy(window_ids)[None])[0].numpy()[rows][:, NUCLEOTIDE_IDS]
        plan.keep(key, output)
        centre_rows.append(output[0])

    table = ism_table(np.stack(centre_rows), CADUCEUS.columns(ids[8:12]), "chr1", 8)
    for _, pos, ref, alt, llr, _, _ in table.rows():
        assert llr == plan.allele_scores("chr1", [Change(pos - 1, ref, alt)])["llr"]
