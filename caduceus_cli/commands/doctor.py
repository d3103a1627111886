"""`caduceus doctor`: what this machine can run, proved by a tiny forward pass of each mixer."""

from __future__ import annotations

import importlib.metadata
import platform
import time

import numpy as np
import torch
import typer

from caduceus_cli import __version__
from caduceus_cli.commands.options import DeviceOpt, DtypeOpt
from caduceus_cli.commands.runtime import set_threads
from caduceus_cli.device import resolve_device, resolve_dtype
from caduceus_cli.model import compiled, cuda_kernels
from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.model.config import CaduceusConfig
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
        scan = "; ".join(
            f"{family}: mamba-ssm's CUDA kernels" if available else f"{family}: PyTorch on the GPU (no mamba-ssm kernels)"
            for family, available in (
                ("Mamba-1", cuda_kernels.mamba1_available()),
                ("Mamba-2", cuda_kernels.mamba2_available()),
            )
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

    failed = [mixer for mixer in MIXER_CHECKS if not _forward_pass_ok(mixer, torch_device, torch_dtype)]
    if failed:
        raise typer.Exit(1)


# a tiny PS model of each mixer: d_model 32, 2 layers (Mamba-2: 4 heads of 16)
MIXER_CHECKS = {"Mamba1": {}, "Mamba2": {"layer": "Mamba2", "d_state": 16, "headdim": 16}}


def _forward_pass_ok(mixer: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Run a tiny random PS model with this mixer and its reverse complement, and report: a PS model is
    exactly RC-equivariant, which checks the whole path end to end."""
    torch.manual_seed(0)
    config = CaduceusConfig(
        d_model=32, n_layer=2, rcps=True, complement_map=dict(enumerate(COMPLEMENT.tolist())),
        ssm_cfg=dict(MIXER_CHECKS[mixer]),
    )  # fmt: skip
    model = CaduceusForMaskedLM(config).to(device, dtype).eval()
    ids = torch.from_numpy(CADUCEUS.encode("ACGTTGCAAGGCTTAN" * 64)[None]).to(device)
    started = time.perf_counter()
    with torch.inference_mode():
        logits = model(ids).logits
        logits_rc = model(torch.from_numpy(CADUCEUS.reverse_complement(ids.cpu().numpy())).to(device)).logits
    elapsed = time.perf_counter() - started
    error = (logits_rc.flip(1)[..., model.complement] - logits).abs().max().item()
    ok = bool(np.isfinite(error)) and error < EQUIVARIANCE_TOLERANCE[dtype]
    typer.echo(
        f"{'forward, ' + mixer:<20}{'ok' if ok else 'FAILED'}: 2 x {ids.shape[1]} bases in "
        f"{elapsed * 1000:.0f} ms, RC-equivariance error {error:.1e}"
    )
    return ok
