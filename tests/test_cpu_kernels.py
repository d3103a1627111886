"""The compiled CPU kernels against the PyTorch reference: values, gradients, threads, fallback."""

from __future__ import annotations

import logging
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import make_checkpoint

import caduceus_cli.model
from caduceus_cli import load_model
from caduceus_cli.model import compiled
from caduceus_cli.model.conv import causal_conv
from caduceus_cli.model.mamba1 import Mamba
from caduceus_cli.model.scan import reference_scan, selective_scan


def _scan_inputs(batch=2, length=300, inner=40, n_state=16, dt_shift=0.0, dtype=torch.float32, seed=1):
    """u, dt, A, B, C, D, dt_bias, z as the model passes them; dt_shift moves delta towards fast
    (positive) or slow (negative) decay."""
    g = torch.Generator().manual_seed(seed)
    u, dt, z = (torch.randn(batch, length, inner, generator=g, dtype=dtype) for _ in range(3))
    B, C = (torch.randn(batch, length, n_state, generator=g, dtype=dtype) for _ in range(2))
    A = -torch.exp(torch.randn(inner, n_state, generator=g, dtype=dtype))
    D, dt_bias = (torch.randn(inner, generator=g, dtype=dtype) for _ in range(2))
    return [u, dt + dt_shift, A, B, C, D, dt_bias, z]


def _reference(inputs, reverse):
    """The reference scan in float64 (flipped for the reverse direction)."""
    u, dt, A, B, C, D, dt_bias, z = (t.double() for t in inputs)
    if not reverse:
        return reference_scan(u, dt, A, B, C, D, dt_bias, z)
    u, dt, B, C, z = (t.flip(1) for t in (u, dt, B, C, z))
    return reference_scan(u, dt, A, B, C, D, dt_bias, z).flip(1)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    ("length", "inner", "dt_shift"),
    [(300, 40, 0.0), (300, 40, 12.0), (300, 40, -12.0), (5000, 24, 0.0), (64, 200, 3.0)],
    ids=["plain", "fast-decay", "slow-decay", "long", "several-blocks"],
)
def test_compiled_scan_equals_the_float64_reference_to_float32_rounding(reverse, length, inner, dt_shift):
    inputs = _scan_inputs(length=length, inner=inner, dt_shift=dt_shift)
    got = compiled.scan(*inputs, reverse=reverse)
    want = _reference(inputs, reverse)
    assert got.dtype == torch.float32 and got.shape == want.shape
    scale = want.abs().max().item()
    assert (got.double() - want).abs().max().item() <= 2e-6 * max(scale, 1.0)


@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_scan_in_float64_equals_the_reference_and_passes_gradcheck(reverse):
    # 150 positions: the backward recomputes the states in chunks of 32, so this crosses four boundaries
    inputs = [t.requires_grad_() for t in _scan_inputs(length=150, inner=5, n_state=3, dt_shift=1.0, dtype=torch.float64)]
    got = compiled.scan(*inputs, reverse=reverse)
    assert (got - _reference(inputs, reverse)).abs().max().item() < 1e-12
    assert torch.autograd.gradcheck(
        lambda *x: compiled.scan(*x, reverse=reverse), inputs, eps=1e-6, atol=1e-7, rtol=1e-6
    )


@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_scan_float32_gradients_equal_the_reference_gradients(reverse):
    inputs = [t.requires_grad_() for t in _scan_inputs(length=200)]
    weights = torch.randn(2, 200, 40, generator=torch.Generator().manual_seed(3))
    got = torch.autograd.grad((compiled.scan(*inputs, reverse=reverse) * weights).sum(), inputs)
    inputs64 = [t.detach().double().requires_grad_() for t in inputs]
    want = torch.autograd.grad((_reference(inputs64, reverse) * weights.double()).sum(), inputs64)
    for name, g, w in zip(["u", "dt", "A", "B", "C", "D", "dt_bias", "z"], got, want, strict=True):
        assert g.dtype == torch.float32, name
        assert (g.double() - w).abs().max().item() <= 1e-5 * w.abs().max().item(), name


def test_selective_scan_runs_the_compiled_kernel_for_float32_and_bfloat16_and_the_reference_for_float64():
    inputs = _scan_inputs(length=100)
    assert torch.equal(selective_scan(*inputs, reverse=True), compiled.scan(*inputs, reverse=True))
    half = [t.bfloat16() for t in inputs]
    assert selective_scan(*half).dtype == torch.bfloat16
    assert torch.equal(selective_scan(*half), compiled.scan(*half))
    inputs64 = [t.double() for t in inputs]
    assert torch.equal(selective_scan(*inputs64), reference_scan(*inputs64))


def test_threads_split_the_work_without_changing_a_bit():
    inputs = _scan_inputs(batch=3, inner=300)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = compiled.scan(*inputs)
        torch.set_num_threads(3)
        assert len(compiled._blocks(3, 300)) >= 3
        three = compiled.scan(*inputs)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(one, three)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("first", [0, 7], ids=["mamba1-x-first", "mamba2-after-z"])
def test_compiled_conv_silu_equals_the_pytorch_conv(reverse, first, checkpoint):
    mamba = next(m for m in load_model(checkpoint).modules() if isinstance(m, Mamba))
    weight, inner = mamba.conv1d.weight[:, 0, :], mamba.D.shape[0]
    projected = torch.randn(2, 50, first + 2 * inner, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = F.silu(causal_conv(projected[..., first : first + inner], weight, mamba.conv1d.bias, reverse))
        got = compiled.conv_silu(projected, weight, mamba.conv1d.bias, reverse, first)
    assert (got - want).abs().max().item() < 1e-6


@pytest.mark.parametrize("mixer", ["Mamba1", "Mamba2"])
@pytest.mark.parametrize("variant", ["ph", "ps"])
def test_model_outputs_equal_with_the_compiled_and_the_reference_path(tmp_path, variant, mixer):
    model = load_model(make_checkpoint(tmp_path, variant, seed=9, mixer=mixer))
    ids = torch.randint(7, 11, (2, 333), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        fast = model.logits_conjoined(ids)
        previous = compiled.use_cpu_scan("reference")
        try:
            slow = model.logits_conjoined(ids)
        finally:
            compiled.use_cpu_scan(previous)
    assert (fast - slow).abs().max().item() < 1e-4


def _cannot_import(monkeypatch):
    """As on a machine where numba cannot load: importing the kernels raises ImportError."""
    monkeypatch.delattr(caduceus_cli.model, "cpu_kernels", raising=False)
    monkeypatch.setitem(sys.modules, "caduceus_cli.model.cpu_kernels", None)


def _cannot_compile(monkeypatch):
    """As where LLVM fails on this CPU: the first call of a kernel raises."""
    from caduceus_cli.model import cpu_kernels

    def fails(*args):
        raise RuntimeError("LLVM ERROR: cannot select")

    monkeypatch.setattr(cpu_kernels, "scan_block", fails)


@pytest.mark.parametrize("breakage", [_cannot_import, _cannot_compile], ids=["import", "compile"])
def test_kernels_that_cannot_load_fall_back_to_the_reference_with_one_warning(breakage, monkeypatch, caplog):
    monkeypatch.setattr(compiled, "_kernels", None)
    breakage(monkeypatch)
    inputs = _scan_inputs(length=50)
    with caplog.at_level(logging.WARNING, logger="caduceus"):
        first = selective_scan(*inputs)
        selective_scan(*inputs)
    assert torch.equal(first, reference_scan(*inputs))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "compiled CPU kernels unavailable" in warnings[0]
    assert compiled.describe().startswith("PyTorch chunked scan (reference")


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("first", [0, 2])
def test_compiled_conv_silu_in_float64_passes_gradcheck(reverse, first):
    g = torch.Generator().manual_seed(6)
    xz = torch.randn(2, 9, 7, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: compiled.conv_silu(*a, reverse, first), (xz, weight, bias))


def test_training_gradients_equal_with_the_compiled_and_the_reference_path(checkpoint):
    model = load_model(checkpoint).train()
    ids = torch.randint(7, 11, (2, 150), generator=torch.Generator().manual_seed(7))

    def gradients() -> list[torch.Tensor]:
        model.zero_grad()
        model(ids).logits.logsumexp(-1).sum().backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    fast = gradients()
    previous = compiled.use_cpu_scan("reference")
    try:
        slow = gradients()
    finally:
        compiled.use_cpu_scan(previous)
    assert len(fast) == len(slow) > 10
    for got, want in zip(fast, slow, strict=True):
        assert (got - want).abs().max().item() <= 1e-4 * max(want.abs().max().item(), 1e-3)
