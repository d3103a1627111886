"""The CUDA path (mamba-ssm's kernels: Mamba-1's selective scan, Mamba-2's SSD and gated norm) against the
CPU path; the engine's memory handling on a GPU.

Skipped without CUDA. Tolerances are those the GPU README measured for the original implementation on
an H100 against the float64 conformance outputs: float32 up to 1.6e-5 on logits and 8.5e-7 on hidden
states; bfloat16 up to 0.35 and 0.04. Our CUDA path must be at least as close. The conformance
folder is ../shared/conformance, or $CADUCEUS_CONFORMANCE where the checkout travels without it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFORMANCE, random_config, random_model

from caduceus_cli import load_model
from caduceus_cli.engine import Engine, Window, default_batch_size
from caduceus_cli.errors import OutOfMemoryError
from caduceus_cli.model import cuda_kernels
from caduceus_cli.model.caduceus import CaduceusForMaskedLM

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
needs_kernel = pytest.mark.skipif(not cuda_kernels.mamba1_available(), reason="needs mamba-ssm's CUDA selective scan")
needs_mamba2_kernels = pytest.mark.skipif(
    not cuda_kernels.mamba2_available(), reason="needs mamba-ssm's Mamba-2 kernels (SSD, gated norm)"
)

CONFORMANCE_DIR = Path(os.environ.get("CADUCEUS_CONFORMANCE", CONFORMANCE))
CONFORMANCE_CONFIGS = ["ph_d32_l2", "ph_d40_l2", "ph_d64_l3", "ps_d32_l2", "ps_d64_l4"]
# max abs error allowed against float64, per dtype and array kind (logits vs hidden-state-like arrays)
TOLERANCE = {
    "float32": {"logits": 2e-5, "hidden": 1e-6},
    "bfloat16": {"logits": 0.35, "hidden": 0.04},
}


def _outputs(model, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        out = model(ids)
        return {
            "logits": out.logits,
            "hidden": out.hidden,
            "logits_conj": model.logits_conjoined(ids),
            "emb_conj": model.embed(ids),
        }


def _kind(array: str) -> str:
    return "logits" if array.startswith("logits") else "hidden"


# --- one direction's gated scan (the call pattern the model uses, whatever the scan's signature) ---
def _direction(dt_shift: float):
    """One Mamba direction of a random model; dt_shift raises the dt bias, so the state decays faster."""
    model = random_model(random_config("ph", d_model=16, n_layer=1, ssm_cfg={"d_state": 16}), seed=5)
    mamba = model.caduceus.backbone.layers[0].mixer.mamba_fwd
    with torch.no_grad():
        mamba.dt_proj.bias += dt_shift
    return mamba.double()


def _xz(length: int) -> torch.Tensor:
    return torch.randn(2, length, 64, generator=torch.Generator().manual_seed(length), dtype=torch.float64)


def _gated(mamba, xz: torch.Tensor, dtype: torch.dtype, device: str) -> torch.Tensor:
    with torch.inference_mode():
        return mamba.to(device, dtype).gated_ssm(xz.to(device, dtype)).double().cpu()


@needs_kernel
@pytest.mark.parametrize("length", [1, 7, 300, 2049, 5000])  # the kernel works in chunks of 2048
@pytest.mark.parametrize("dt_shift", [0.0, 4.0])
def test_cuda_scan_float32_matches_float64_cpu_scan(length, dt_shift):
    mamba, xz = _direction(dt_shift), _xz(length)
    want = _gated(mamba, xz, torch.float64, "cpu")
    got = _gated(mamba, xz, torch.float32, "cuda")
    assert (got - want).abs().max() <= 1e-5 * max(1.0, want.abs().max().item())


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_scan_runs_in_half_precision(dtype):
    """u, B, C come in the model dtype and delta in float32 (its bias and softplus are applied in
    float32); the kernel wants them in one dtype, so the scan must reconcile them."""
    mamba, xz = _direction(0.0), _xz(300)
    want = _gated(mamba, xz.to(dtype), torch.float64, "cpu")
    with torch.inference_mode():
        got = mamba.to("cuda", dtype).gated_ssm(xz.to("cuda", dtype))
    assert got.dtype == dtype
    assert (got.double().cpu() - want).abs().max() <= 3e-2 * max(1.0, want.abs().max().item())


def test_float64_on_cuda_falls_back_to_the_exact_scan():
    """mamba-ssm's kernel has no float64; a float64 model on the GPU must still be exact."""
    mamba, xz = _direction(4.0), _xz(300)
    want = _gated(mamba, xz, torch.float64, "cpu")
    assert (_gated(mamba, xz, torch.float64, "cuda") - want).abs().max() <= 1e-10


# --- whole models ---------------------------------------------------------------------------------
@needs_kernel
@pytest.mark.skipif(not CONFORMANCE_DIR.is_dir(), reason="conformance fixtures not present")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("config_name", CONFORMANCE_CONFIGS)
def test_cuda_model_reproduces_conformance_arrays(config_name, dtype):
    inputs = np.load(CONFORMANCE_DIR / "inputs.npz")
    expected = np.load(CONFORMANCE_DIR / config_name / "expected.npz")
    model = load_model(CONFORMANCE_DIR / config_name, device="cuda", dtype=dtype)
    for name in inputs.files:
        got = _outputs(model, torch.from_numpy(inputs[name]).cuda())
        for array, value in got.items():
            key = f"{name}__{array}"
            limit = TOLERANCE[dtype][_kind(array)]
            error = np.abs(value.double().cpu().numpy() - expected[key]).max()
            assert error <= limit, f"{config_name} {dtype} {key}: max abs error {error:.2e} > {limit:.0e}"


@needs_kernel
@pytest.mark.parametrize("variant", ["ph", "ps"])
@pytest.mark.parametrize("length", [1, 150, 3000])
def test_cuda_float32_model_matches_cpu_float64_model(variant, length):
    model = random_model(random_config(variant, d_model=32, n_layer=2), seed=7)
    ids = torch.from_numpy(np.random.default_rng(length).integers(7, 12, size=(2, length)))
    want = _outputs(model.double(), ids)
    got = _outputs(model.float().cuda(), ids.cuda())
    for array, value in got.items():
        error = (value.double().cpu() - want[array]).abs().max().item()
        assert error <= TOLERANCE["float32"][_kind(array)], f"{variant} L={length} {array}: {error:.2e}"


@needs_mamba2_kernels
@pytest.mark.skipif(not (CONFORMANCE_DIR / "plantcad2_d64_l2").is_dir(), reason="conformance fixtures not present")
@pytest.mark.parametrize(("dtype", "logits_tol", "hidden_tol"), [("float32", 1e-4, 3e-5), ("bfloat16", 0.35, 0.05)])
def test_cuda_model_reproduces_the_plantcad2_fixture(dtype, logits_tol, hidden_tol):
    import json

    folder = CONFORMANCE_DIR / "plantcad2_d64_l2"
    model = load_model(folder, device="cuda", dtype=dtype)
    cases = json.loads((folder / "cases.json").read_text())
    expected = np.load(folder / "expected.npz")
    for name, text in cases["strings"].items():  # lengths below, at and past the kernel's 256-position chunk
        ids = torch.from_numpy(model.tokenizer.encode(text))[None].cuda()
        with torch.inference_mode():
            out, emb = model(ids), model.embed(ids)
        for array, value, limit in (
            ("logits", out.logits, logits_tol), ("hidden", out.hidden, hidden_tol), ("emb", emb, hidden_tol)
        ):  # fmt: skip
            error = np.abs(value[0].double().cpu().numpy() - expected[f"{name}__{array}"]).max()
            assert error <= limit, f"{dtype} {name} {array}: max abs error {error:.2e} > {limit:.0e}"


@needs_mamba2_kernels
@pytest.mark.parametrize("variant", ["ph", "ps"])
@pytest.mark.parametrize("length", [1, 150, 3000])
def test_cuda_float32_mamba2_model_matches_cpu_float64_model(variant, length):
    config = random_config(variant, d_model=64, n_layer=2, mixer="Mamba2", ssm_cfg={"headdim": 32, "ngroups": 2})
    model = random_model(config, seed=7)
    ids = torch.from_numpy(np.random.default_rng(length).integers(7, 12, size=(2, length)))
    want = _outputs(model.double(), ids)
    got = _outputs(model.float().cuda(), ids.cuda())
    for array, value in got.items():
        error = (value.double().cpu() - want[array]).abs().max().item()
        limit = 1e-4 if array.startswith("logits") else 3e-5
        assert error <= limit, f"{variant} L={length} {array}: {error:.2e}"


@pytest.mark.parametrize("mixer", ["Mamba1", "Mamba2"])
@pytest.mark.parametrize("variant", ["ph", "ps"])
def test_cuda_float64_model_is_exact(variant, mixer):
    model = random_model(random_config(variant, d_model=16, n_layer=2, mixer=mixer), seed=8)
    ids = torch.from_numpy(np.random.default_rng(0).integers(7, 12, size=(1, 300)))
    want = _outputs(model.double(), ids)
    got = _outputs(model.double().cuda(), ids.cuda())
    for array, value in got.items():
        assert (value.cpu() - want[array]).abs().max() <= 1e-9, array


# --- the engine on a real GPU ---------------------------------------------------------------------
def _windows(count: int, length: int) -> list[Window]:
    rng = np.random.default_rng(count)
    return [Window(ids=rng.integers(7, 11, size=length), key=i) for i in range(count)]


@pytest.fixture
def memory_cap():
    """Cap this process's share of GPU memory for one test, and lift the cap afterwards."""
    device = torch.device("cuda")

    def cap(gib: float) -> None:
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, gib * 2**30 / total), device)

    yield cap
    torch.cuda.set_per_process_memory_fraction(1.0, device)
    torch.cuda.empty_cache()


def test_engine_halves_the_batch_on_out_of_memory_and_keeps_every_window(memory_cap, caplog):
    model = random_model(random_config("ph", d_model=64, n_layer=2), seed=9).cuda()
    windows = _windows(16, 32_768)
    memory_cap(2.0)  # one window (both strands) needs well under 1 GiB here, 16 of them about 10 GiB
    engine = Engine(model, batch_size=16)
    with caplog.at_level(logging.WARNING, logger="caduceus"):
        got = list(engine.map(iter(windows), "embed"))
    assert engine.batch_size < 16 and "out of memory" in caplog.text
    assert [key for key, _ in got] == list(range(16))
    memory_cap(80.0)
    one_by_one = list(Engine(model, batch_size=1).map(iter(windows[:2]), "embed"))
    for (_, batched), (_, single) in zip(got[:2], one_by_one, strict=True):
        np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)


def test_engine_reports_a_window_too_large_for_the_gpu(memory_cap):
    model = random_model(random_config("ph", d_model=64, n_layer=2), seed=9).cuda()
    memory_cap(0.05)
    with pytest.raises(OutOfMemoryError, match="one window of 131072 bases"):
        list(Engine(model, batch_size=1).map(iter(_windows(1, 131_072)), "embed"))


@needs_kernel
def test_automatic_batch_size_fits_in_free_memory():
    """The batch the engine picks from free memory runs without running out of it, at the published size."""
    from weights.train import TrainConfig, initialise, model_config

    model = CaduceusForMaskedLM(model_config(TrainConfig(d_model=256, n_layer=16)))
    initialise(model, torch.Generator().manual_seed(0))
    model = model.to("cuda", torch.bfloat16).eval()
    length = 32_768
    free_before, _ = torch.cuda.mem_get_info()
    batch = default_batch_size(model, length)
    assert batch >= 1
    torch.cuda.reset_peak_memory_stats()
    baseline = torch.cuda.memory_allocated()
    engine = Engine(model)
    results = list(engine.map(iter(_windows(batch, length)), "embed"))
    assert len(results) == batch and engine.batch_size is None  # no out-of-memory back-off happened
    assert torch.cuda.max_memory_allocated() - baseline < free_before
