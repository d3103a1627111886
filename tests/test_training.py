"""The training recipe of the shipped model (weights/): masking, tiling, the training scan, and a short run."""

from __future__ import annotations

import numpy as np
import torch

from caduceus_cli.model.load import load_model
from caduceus_cli.tokens import MASK_ID, N_ID, NUCLEOTIDE_IDS
from weights.data import IGNORE, mask_for_mlm, tile
from weights.train import TrainConfig, train


def repetitive_sequence(length: int, seed: int = 0) -> np.ndarray:
    """A random 37-mer repeated, with a few N: learnable from context, unlike random DNA."""
    rng = np.random.default_rng(seed)
    ids = np.tile(rng.choice(NUCLEOTIDE_IDS, 37), length // 37 + 1)[:length].astype(np.uint8)
    ids[rng.choice(length, 20, replace=False)] = N_ID
    return ids


def test_masking_selects_about_15_percent_and_never_scores_n():
    ids = np.random.default_rng(1).choice(np.r_[NUCLEOTIDE_IDS, N_ID], size=(8, 4096))
    inputs, labels = mask_for_mlm(ids, np.random.default_rng(2))
    scored = labels != IGNORE
    assert not (scored & (ids == N_ID)).any()
    np.testing.assert_array_equal(labels[scored], ids[scored])
    assert abs(scored.mean() - 0.15 * (ids != N_ID).mean()) < 0.005
    assert abs((inputs == MASK_ID).mean() - 0.8 * 0.15) < 0.005
    assert np.isin(inputs[inputs != MASK_ID], np.r_[NUCLEOTIDE_IDS, N_ID]).all()
    np.testing.assert_array_equal(
        inputs[~scored & (ids != N_ID) & (inputs != MASK_ID)],
        ids[~scored & (ids != N_ID) & (inputs != MASK_ID)],
    )


def test_tiles_cover_every_position_exactly_once():
    for total, length in [(10, 4), (8, 4), (2_500_000, 1024)]:
        covered = np.zeros(total, dtype=int)
        for start, first_new in tile(total, length):
            assert start + length <= total
            covered[start + first_new : start + length] += 1
        assert (covered == 1).all()


def test_a_short_training_run_lowers_the_loss_and_saves_a_loadable_checkpoint(tmp_path):
    cfg = TrainConfig(
        d_model=16,
        n_layer=1,
        seq_len=128,
        batch_size=4,
        steps=40,
        warmup=5,
        lr=1e-2,
        log_every=10,
        checkpoint_every=1000,
    )
    model, losses = train(cfg, [repetitive_sequence(20_000)], tmp_path)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    loaded = load_model(tmp_path)
    assert loaded.default_window == 128
    ids = torch.from_numpy(repetitive_sequence(128, seed=3).astype(np.int64))[None]
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert (tmp_path / "train_log.tsv").read_text().count("\n") == 1 + 40 // 10
