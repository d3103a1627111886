"""`caduceus doctor`: what this machine can run, proved by a tiny forward pass."""

from __future__ import annotations

import importlib.metadata
import platform
import time

import numpy as np
import torch
import typer

from caduceus_cli import __version__
from caduceus_cli.commands.common import DeviceOpt, DtypeOpt, set_threads
from caduceus_cli.device import resolve_device, resolve_dtype
from caduceus_cli.model import compiled
from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.model.config import CaduceusConfig
from caduceus_cli.model.scan import cuda_kernel_available
from caduceus_cli.tokens import CADUCEUS, COMPLEMENT

# Largest RC-equivariance error of the tiny PS model's logits that passes, per compute dtype: a few
# hundred times each dtype's rounding at logits of magnitude ~10.
EQUIVARIANCE_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-3, torch.bfloat16: 0.5, torch.float16: 0.5}


def _version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def doctor(device: DeviceOpt = "auto", dtype: DtypeOpt = "auto") -> None:
    """Report versions, the backend `--device auto` would use, and run a tiny model on it."""
    set_threads(None)  # the default of every command, so the thread count shown is the one they use
    rows = [
        ("caduceus-cli", __version__),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("CUDA (torch build)", torch.version.cuda or "none (CPU build)"),
        (
            "GPUs visible",
            ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none",
        ),
        ("numba", _version_of("numba")),
        ("mamba-ssm", _version_of("mamba-ssm")),
        ("causal-conv1d", _version_of("causal-conv1d")),
    ]
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    if torch_device.type == "cuda":
        scan = (
            "mamba-ssm CUDA selective scan"
            if cuda_kernel_available()
            else "PyTorch chunked scan on the GPU (mamba-ssm's faster kernel: docs/install.md, The CUDA kernel)"
        )
    else:
        scan = f"{compiled.describe()} on the CPU"
    rows += [
        ("device", str(torch_device)),
        ("dtype", str(torch_dtype).removeprefix("torch.")),
        ("scan backend", scan),
    ]
    for name, value in rows:
        typer.echo(f"{name:<20}{value}")

    torch.manual_seed(0)
    config = CaduceusConfig(
        d_model=32, n_layer=2, rcps=True, complement_map=dict(enumerate(COMPLEMENT.tolist()))
    )
    model = CaduceusForMaskedLM(config).to(torch_device, torch_dtype).eval()
    ids = torch.from_numpy(CADUCEUS.encode("ACGTTGCAAGGCTTAN" * 64)[None]).to(torch_device)
    started = time.perf_counter()
    with torch.inference_mode():
        logits = model(ids).logits
        logits_rc = model(torch.from_numpy(CADUCEUS.reverse_complement(ids.cpu().numpy())).to(torch_device)).logits
    elapsed = time.perf_counter() - started
    # a PS model is exactly RC-equivariant, which checks the whole path end to end
    error = (logits_rc.flip(1)[..., model.complement] - logits).abs().max().item()
    ok = bool(np.isfinite(error)) and error < EQUIVARIANCE_TOLERANCE[torch_dtype]
    typer.echo(
        f"{'forward pass':<20}{'ok' if ok else 'FAILED'}: 2 x {ids.shape[1]} bases in {elapsed * 1000:.0f} ms, "
        f"RC-equivariance error {error:.1e}"
    )
    if not ok:
        raise typer.Exit(1)
