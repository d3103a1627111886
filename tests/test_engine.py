"""The engine returns each window's rows in input order, batched without padding, and backs off on OOM."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from caduceus_cli import load_model
from caduceus_cli.engine import Engine, Window
from caduceus_cli.errors import OutOfMemoryError
from caduceus_cli.tokens import NUCLEOTIDE_IDS


def _windows(lengths, rows=None):
    rng = np.random.default_rng(11)
    return [Window(rng.integers(7, 12, size=n), key=i, rows=rows) for i, n in enumerate(lengths)]


@pytest.mark.parametrize("head", ["embed", "logits"])
def test_results_equal_the_model_api_window_by_window_in_input_order(checkpoint, head):
    model = load_model(checkpoint)
    windows = _windows([20, 20, 20, 9, 20, 20])
    results = list(Engine(model, batch_size=2).map(windows, head))
    assert [key for key, _ in results] == list(range(6))
    for (_, got), window in zip(results, windows, strict=True):
        ids = torch.from_numpy(window.ids)[None]
        with torch.no_grad():
            want = (model.embed(ids) if head == "embed" else model.logits_conjoined(ids))[0].numpy()
        if head == "logits":  # the engine returns the A, C, G, T columns, the only ones scores read
            want = want[:, NUCLEOTIDE_IDS]
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.abs(got - want).max() < 1e-5


def test_rows_selects_positions_before_they_leave_the_device(ph_checkpoint):
    model = load_model(ph_checkpoint)
    full = dict(Engine(model).map(_windows([15, 15]), "logits"))
    picked = dict(Engine(model).map(_windows([15, 15], rows=np.array([7])), "logits"))
    assert picked[0].shape == (1, 4)
    assert np.array_equal(picked[1][0], full[1][7])


def test_kept_rows_own_their_memory_and_share_none_with_the_batch_output(ph_checkpoint):
    # score-variants keeps one row per window for a whole chunk of records: a view of the batch's
    # output would keep every (batch, W, V) tensor alive as long (issue 23: memory grew per record)
    model = load_model(ph_checkpoint)
    batch_outputs = []  # held here, so no copy can reuse their memory while they are compared
    conjoined = model.logits_conjoined

    def recorded(ids, rc="auto"):
        batch_outputs.append(conjoined(ids, rc=rc))
        return batch_outputs[-1]

    model.logits_conjoined = recorded
    kept = dict(Engine(model, batch_size=4).map(_windows([15] * 8, rows=slice(7, 8)), "logits"))
    whole = dict(Engine(model, batch_size=4).map(_windows([15] * 4), "logits"))
    assert len(batch_outputs) == 3
    for rows in [*kept.values(), *whole.values()]:
        assert rows.base is None and rows.flags.owndata and rows.dtype == np.float32
        assert not any(np.shares_memory(rows, output.numpy()) for output in batch_outputs)
    assert np.array_equal(kept[1][0], whole[1][7])


def test_the_cpu_forward_pass_runs_on_the_engines_model_thread(ph_checkpoint):
    # its own malloc arena, apart from the rows the caller keeps (engine.py, stages.DedicatedThread)
    model = load_model(ph_checkpoint)
    threads = []
    embed = model.embed

    def recorded(ids, rc="auto"):
        threads.append((threading.current_thread().name, torch.is_inference_mode_enabled()))
        return embed(ids, rc=rc)

    model.embed = recorded
    list(Engine(model, batch_size=2).map(_windows([10] * 4), "embed"))
    assert threads == [("caduceus-model", True)] * 2


def test_an_error_while_reading_windows_reaches_the_caller(ph_checkpoint):
    def broken():
        yield from _windows([10])
        raise ValueError("bad record 2")

    with pytest.raises(ValueError, match="bad record 2"):
        list(Engine(load_model(ph_checkpoint)).map(broken(), "embed"))


def test_out_of_memory_halves_the_batch_and_keeps_going(ph_checkpoint, monkeypatch):
    engine = Engine(load_model(ph_checkpoint), batch_size=4)
    real_forward = engine._forward

    def forward_that_fits_two(batch, output, rc):
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_forward(batch, output, rc)

    monkeypatch.setattr(engine, "_forward", forward_that_fits_two)
    results = list(engine.map(_windows([12] * 8), "embed"))
    assert [key for key, _ in results] == list(range(8))
    assert engine.batch_size == 2


def test_out_of_memory_at_batch_size_one_is_a_clear_error(ph_checkpoint, monkeypatch):
    engine = Engine(load_model(ph_checkpoint), batch_size=1)

    def always_oom(batch, output, rc):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(engine, "_forward", always_oom)
    with pytest.raises(OutOfMemoryError, match="out of GPU memory for one window of 12 bases"):
        list(engine.map(_windows([12]), "embed"))
