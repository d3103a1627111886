"""The training recipe of the shipped model (weights/): masking, tiling, the training scan, and a short run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import weights.train
from caduceus_cli.model.load import load_model
from caduceus_cli.tokens import MASK_ID, N_ID, NUCLEOTIDE_IDS
from weights.data import IGNORE, mask_for_mlm, tile
from weights.evaluate import masked_base_task
from weights.train import TrainConfig, heldout_score, train, training_batch


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
        checkpoint_every=20,
    )
    heldout = masked_base_task(
        *mask_for_mlm(repetitive_sequence(2_000).astype(np.int64), np.random.default_rng(0)), 128
    )
    model, losses = train(cfg, [repetitive_sequence(20_000)], tmp_path / "model", tmp_path / "run", heldout)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    loaded = load_model(tmp_path / "model")
    assert loaded.default_window == 128
    ids = torch.from_numpy(repetitive_sequence(128, seed=3).astype(np.int64))[None]
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert (tmp_path / "model" / "train_log.tsv").read_text().count("\n") == 1 + 40 // 10

    # the learning curve: one held-out line per checkpoint, the last one the finished model's score
    curve = [
        line.split("\t") for line in (tmp_path / "model" / "heldout_log.tsv").read_text().splitlines()[1:]
    ]
    assert [(int(row[0]), int(row[1])) for row in curve] == [(20, 20 * 4 * 128), (40, 40 * 4 * 128)]
    accuracy, cross_entropy = heldout_score(loaded, heldout)
    assert [float(v) for v in curve[-1][3:]] == [round(cross_entropy, 4), round(accuracy, 4)]
    assert float(curve[-1][3]) < float(curve[0][3])


def test_an_interrupted_run_resumes_exactly_where_its_checkpoint_left_off(tmp_path, monkeypatch):
    cfg = TrainConfig(
        d_model=16, n_layer=1, seq_len=64, batch_size=2, steps=6, warmup=2, checkpoint_every=3, log_every=1
    )
    segments = [repetitive_sequence(5_000)]
    straight, straight_losses = train(cfg, segments, run_dir=tmp_path / "straight")

    calls = 0

    def batch_then_interrupt(*args):
        nonlocal calls
        calls += 1
        if calls == 5:  # in step 5, after the checkpoint of step 3
            raise KeyboardInterrupt
        return training_batch(*args)

    monkeypatch.setattr(weights.train, "training_batch", batch_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, segments, run_dir=tmp_path / "resumed")
    monkeypatch.undo()
    resumed, resumed_losses = train(cfg, segments, run_dir=tmp_path / "resumed")

    assert resumed_losses == straight_losses
    for (name, got), want in zip(resumed.state_dict().items(), straight.state_dict().values(), strict=True):
        assert torch.equal(got, want), name
    log = (tmp_path / "resumed" / "train_log.tsv").read_text().splitlines()
    assert [int(line.split("\t")[0]) for line in log[1:]] == [1, 2, 3, 4, 5, 6]


def test_a_checkpoint_of_another_recipe_is_refused(tmp_path):
    cfg = TrainConfig(d_model=16, n_layer=1, seq_len=64, batch_size=2, steps=3, warmup=1, checkpoint_every=3)
    train(cfg, [repetitive_sequence(5_000)], run_dir=tmp_path)
    with pytest.raises(SystemExit, match="another recipe \\(lr\\)"):
        train(replace(cfg, lr=1e-3, steps=3), [repetitive_sequence(5_000)], run_dir=tmp_path)


def test_a_finished_run_goes_on_when_resumed_with_a_longer_schedule(tmp_path):
    cfg = TrainConfig(
        d_model=16, n_layer=1, seq_len=64, batch_size=2, steps=4, warmup=1, checkpoint_every=3, log_every=1
    )
    segments = [repetitive_sequence(5_000)]
    _, first = train(cfg, segments, run_dir=tmp_path)  # its end, step 4, is checkpointed too
    _, again = train(cfg, segments, run_dir=tmp_path)
    assert again == first

    _, longer = train(replace(cfg, steps=8), segments, run_dir=tmp_path)
    assert len(longer) == 8 and longer[:4] == first
    log = [line.split("\t") for line in (tmp_path / "train_log.tsv").read_text().splitlines()[1:]]
    assert [int(row[0]) for row in log] == list(range(1, 9))
    # step 5 is half way through the longer cosine: lr * (0.1 + 0.9 * 0.5 * (1 + cos(pi / 2)))
    assert float(log[4][3]) == pytest.approx(cfg.lr * 0.55, rel=1e-3)
