"""The model's calls into mamba-ssm's GPU kernels, checked on the CPU.

mamba-ssm ships a pure-PyTorch twin of each kernel the model calls, taking the same arguments:
`selective_scan_ref` (Mamba-1's scan), `ssd_chunk_scan_combined_ref` (Mamba-2's chunked SSD) and
`rms_norm_ref` (its gated norm). Here they stand in for the kernels (cuda_kernels.py) while CPU tensors
take the kernel branch, so everything the model does around a kernel call (layout, dtypes, dt bias and
softplus, D, gate, the reverse direction's flips) is checked against our own CPU path without a GPU.
A wrong argument shows: the last tests break the glue on purpose and see the check fail.

Needs mamba-ssm importable; CI installs it without compiling CUDA (see the Makefile). On such an
install the compiled extension `selective_scan_cuda` is missing and mamba-ssm's package __init__
imports its language-model and text-generation code (transformers): the fixture stands in for the
first and imports the reference modules without running the second.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import make_checkpoint

from caduceus_cli import load_model
from caduceus_cli.model import cuda_kernels
from caduceus_cli.model.config import Mamba2Config
from caduceus_cli.model.scan import reference_scan, selective_scan
from caduceus_cli.model.ssd import reference_ssd, ssd


@pytest.fixture(scope="module")
def references():
    spec = importlib.util.find_spec("mamba_ssm")
    if spec is None:
        pytest.skip("mamba-ssm is not installed (make test installs it without its CUDA extension)")
    patch = pytest.MonkeyPatch()
    package = types.ModuleType("mamba_ssm")
    package.__path__ = list(spec.submodule_search_locations)
    patch.setitem(sys.modules, "mamba_ssm", package)
    if importlib.util.find_spec("selective_scan_cuda") is None:
        patch.setitem(sys.modules, "selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_ref
        from mamba_ssm.ops.triton.layernorm_gated import rms_norm_ref
        from mamba_ssm.ops.triton.ssd_combined import ssd_chunk_scan_combined_ref
    except ImportError as err:
        patch.undo()
        pytest.skip(f"mamba-ssm's references cannot be imported here: {err}")
    yield SimpleNamespace(
        selective_scan=selective_scan_ref, chunk_scan=_padded(ssd_chunk_scan_combined_ref), gated_norm=rms_norm_ref
    )
    patch.undo()
    for name in [name for name in sys.modules if name.startswith("mamba_ssm.")]:
        del sys.modules[name]


def _padded(chunk_scan_ref):
    """`mamba_chunk_scan_combined`'s signature over its reference, which needs whole chunks: inputs padded
    with zeros to a multiple of chunk_size, the padding cut off the output (positions are causal, so
    padding at the end changes nothing before it). Options the model never passes must stay unset."""

    def chunk_scan(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None, seq_idx=None,
                   cu_seqlens=None, dt_softplus=False, dt_limit=(0.0, float("inf")), return_final_states=False,
                   return_varlen_states=False):  # fmt: skip
        assert initial_states is None and seq_idx is None and cu_seqlens is None
        assert dt_limit == (0.0, float("inf")) and not return_final_states and not return_varlen_states
        length = x.shape[1]
        pad = -length % chunk_size
        x, dt, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (x, dt, B, C))
        z = None if z is None else F.pad(z, (0, 0, 0, 0, 0, pad))
        y = chunk_scan_ref(x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus)
        return y[:, :length]

    return chunk_scan


@pytest.fixture
def kernels(references, monkeypatch):
    """The kernel branch for CPU tensors, with mamba-ssm's references as the kernels."""
    monkeypatch.setattr(cuda_kernels, "_on_gpu", lambda t: True)
    monkeypatch.setattr(cuda_kernels, "selective_scan_fn", references.selective_scan)
    monkeypatch.setattr(cuda_kernels, "mamba_chunk_scan_combined", references.chunk_scan)
    monkeypatch.setattr(cuda_kernels, "rmsnorm_fn", references.gated_norm)
    return references


# --- Mamba-1 ------------------------------------------------------------------------------------


def _scan_inputs(length, seed=1):
    """u, dt, A, B, C, D, dt_bias, z in float32, as the Mamba-1 mixer passes them."""
    g = torch.Generator().manual_seed(seed)
    u, dt, z = (torch.randn(2, length, 24, generator=g) for _ in range(3))
    B, C = (torch.randn(2, length, 8, generator=g) for _ in range(2))
    A = -torch.exp(torch.randn(24, 8, generator=g))
    D, dt_bias = (torch.randn(24, generator=g) for _ in range(2))
    return [u, dt, A, B, C, D, dt_bias, z]


def _reference_scan(inputs, reverse):
    u, dt, A, B, C, D, dt_bias, z = (t.double() for t in inputs)
    if reverse:
        u, dt, B, C, z = (t.flip(1) for t in (u, dt, B, C, z))
    y = reference_scan(u, dt, A, B, C, D, dt_bias, z)
    return y.flip(1) if reverse else y


def _close(got: torch.Tensor, want: torch.Tensor, tolerance: float) -> bool:
    return (got.double() - want.double()).abs().max().item() <= tolerance * max(want.abs().max().item(), 1.0)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [1, 7, 300])
def test_mamba1_kernel_glue_equals_the_cpu_scan(kernels, length, reverse):
    inputs = _scan_inputs(length)
    got = selective_scan(*inputs, reverse=reverse)
    assert got.dtype == torch.float32
    assert _close(got, _reference_scan(inputs, reverse), 2e-5)


# --- Mamba-2 ------------------------------------------------------------------------------------

_LAYOUTS = {
    "one-group": Mamba2Config(d_state=8, d_inner=24, headdim=8, ngroups=1),
    "two-groups-channel-D": Mamba2Config(d_state=8, d_inner=32, headdim=8, ngroups=2, d_has_hdim=True),
}


def _ssd_inputs(layout: Mamba2Config, length: int, seed=2):
    """xbc, dt, A, D, dt_bias, z in float32, as the Mamba-2 mixer passes them (z a view)."""
    g = torch.Generator().manual_seed(seed)
    xbc = torch.randn(2, length, layout.conv_dim, generator=g)
    dt = torch.randn(2, length, layout.nheads, generator=g)
    A = -torch.exp(torch.randn(layout.nheads, generator=g))
    D = torch.randn(layout.d_inner if layout.d_has_hdim else layout.nheads, generator=g)
    dt_bias = torch.randn(layout.nheads, generator=g)
    z = torch.randn(2, length, layout.d_inner + 3, generator=g)[..., : layout.d_inner]
    return [xbc, dt, A, D, dt_bias, z]


def _reference_ssd(inputs, layout, reverse):
    xbc, dt, A, D, dt_bias, z = (t.double() for t in inputs)
    if not reverse:
        return reference_ssd(xbc, dt, A, D, dt_bias, z, layout)
    return reference_ssd(xbc.flip(1), dt.flip(1), A, D, dt_bias, z.flip(1), layout).flip(1)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [1, 7, 300])  # 300: across the kernel's 256-position chunk
@pytest.mark.parametrize("layout", list(_LAYOUTS))
def test_mamba2_ssd_kernel_glue_equals_the_cpu_ssd(kernels, layout, length, reverse):
    layout = _LAYOUTS[layout]
    inputs = _ssd_inputs(layout, length)
    got = ssd(*inputs, layout, reverse)
    assert got.dtype == torch.float32 and got.shape == (2, length, layout.d_inner)
    assert _close(got, _reference_ssd(inputs, layout, reverse), 2e-5)


def test_mamba2_norm_kernel_glue_equals_the_cpu_norm(kernels, monkeypatch, tmp_path):
    model = load_model(make_checkpoint(tmp_path, "ph", seed=3, mixer="Mamba2", ssm_cfg={"headdim": 8, "ngroups": 2}))
    norm = model.caduceus.backbone.layers[0].mixer.mamba_fwd.norm
    x = torch.randn(2, 50, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = norm(x)
        monkeypatch.setattr(cuda_kernels, "_on_gpu", lambda t: False)
        want = norm(x)
    assert _close(got, want, 1e-6)


# --- whole models on the kernel branch ------------------------------------------------------------


@pytest.mark.parametrize("mixer", ["Mamba1", "Mamba2"])
@pytest.mark.parametrize("variant", ["ph", "ps"])
def test_whole_models_on_the_kernel_branch_equal_the_cpu_path(references, monkeypatch, tmp_path, variant, mixer):
    model = load_model(make_checkpoint(tmp_path, variant, seed=5, mixer=mixer))
    ids = torch.randint(7, 11, (2, 300), generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        want = model.logits_conjoined(ids)
        with monkeypatch.context() as patch:
            patch.setattr(cuda_kernels, "_on_gpu", lambda t: True)
            patch.setattr(cuda_kernels, "selective_scan_fn", references.selective_scan)
            patch.setattr(cuda_kernels, "mamba_chunk_scan_combined", references.chunk_scan)
            patch.setattr(cuda_kernels, "rmsnorm_fn", references.gated_norm)
            got = model.logits_conjoined(ids)
    assert _close(got, want, 1e-5)


# --- the check catches broken glue ----------------------------------------------------------------


def _sabotaged(kernel, change):
    def broken(*args, **kwargs):
        args, kwargs = change(list(args), dict(kwargs))
        return kernel(*args, **kwargs)

    return broken


def _mamba1_breakages():
    def double_bias(a, k):
        return a, {**k, "delta_bias": 2 * k["delta_bias"]}

    def no_softplus(a, k):
        return a, {**k, "delta_softplus": False}

    def no_d(a, k):
        return a[:5] + [torch.zeros_like(a[5])] + a[6:], k

    def no_gate(a, k):
        return a, {**k, "z": None}

    return {"doubled-dt-bias": double_bias, "no-softplus": no_softplus, "no-D": no_d, "no-gate": no_gate}


def _mamba2_breakages():
    def double_bias(a, k):
        return a, {**k, "dt_bias": 2 * k["dt_bias"]}

    def no_softplus(a, k):
        return a, {**k, "dt_softplus": False}

    def no_d(a, k):
        return a, {**k, "D": None}

    def swapped_b_and_c(a, k):
        return a[:3] + [a[4], a[3]] + a[5:], k

    def no_gate(a, k):
        return a, {**k, "z": None}

    return {"doubled-dt-bias": double_bias, "no-softplus": no_softplus, "no-D": no_d,
            "B-C-swapped": swapped_b_and_c, "no-gate": no_gate}  # fmt: skip


@pytest.mark.parametrize("breakage", list(_mamba1_breakages()))
def test_the_mamba1_glue_check_fails_on_broken_glue(kernels, monkeypatch, breakage):
    broken = _sabotaged(kernels.selective_scan, _mamba1_breakages()[breakage])
    monkeypatch.setattr(cuda_kernels, "selective_scan_fn", broken)
    inputs = _scan_inputs(300)
    assert not _close(selective_scan(*inputs), _reference_scan(inputs, False), 2e-5)


@pytest.mark.parametrize("breakage", list(_mamba2_breakages()))
def test_the_mamba2_glue_check_fails_on_broken_glue(kernels, monkeypatch, breakage):
    broken = _sabotaged(kernels.chunk_scan, _mamba2_breakages()[breakage])
    monkeypatch.setattr(cuda_kernels, "mamba_chunk_scan_combined", broken)
    layout = _LAYOUTS["two-groups-channel-D"]
    inputs = _ssd_inputs(layout, 300)
    assert not _close(ssd(*inputs, layout), _reference_ssd(inputs, layout, False), 2e-5)


@pytest.mark.parametrize("mixer", ["Mamba1", "Mamba2"])
def test_the_glue_check_fails_on_an_unflipped_reverse_direction(kernels, monkeypatch, mixer):
    from caduceus_cli.model import scan
    from caduceus_cli.model import ssd as ssd_module

    module = scan if mixer == "Mamba1" else ssd_module
    monkeypatch.setattr(module, "_flipped", lambda run, reverse, *args: run(*args))
    if mixer == "Mamba1":
        inputs = _scan_inputs(300)
        assert not _close(selective_scan(*inputs, reverse=True), _reference_scan(inputs, True), 2e-5)
    else:
        layout = _LAYOUTS["one-group"]
        inputs = _ssd_inputs(layout, 300)
        assert not _close(ssd(*inputs, layout, True), _reference_ssd(inputs, layout, True), 2e-5)
