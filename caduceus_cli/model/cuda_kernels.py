"""mamba-ssm's GPU kernels, where installed: every call the model makes into them goes through here.

- Mamba-1: `selective_scan_fn`, the fused selective scan with its gate (scan.py).
- Mamba-2: `mamba_chunk_scan_combined`, the chunked SSD (ssd.py), and `rmsnorm_fn`, the gated
  grouped RMSNorm (mamba2.py).

Each is None where mamba-ssm (or that part of it) cannot be imported (a mamba-ssm built without its
CUDA extension, or one too old for Mamba-2) and on a machine without a GPU, where mamba-ssm is never
imported; the model then runs its own PyTorch paths. The names
are read at call time (`cuda_kernels.selective_scan_fn(...)`), so the tests can put mamba-ssm's own
pure-PyTorch references with the same signatures in their place and check the glue on a CPU.
"""

from __future__ import annotations

import contextlib

import torch

selective_scan_fn = mamba_chunk_scan_combined = rmsnorm_fn = None
if torch.cuda.is_available():  # pragma: no cover - depends on the machine
    with contextlib.suppress(ImportError):
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    with contextlib.suppress(ImportError):
        from mamba_ssm.ops.triton.layernorm_gated import rmsnorm_fn
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

# dtypes the kernels take for their sequence inputs; float64 runs our PyTorch paths, on the GPU too
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def serves(t: torch.Tensor, kernel) -> bool:
    """Whether `kernel` (one of the names above) runs for this tensor."""
    return kernel is not None and _on_gpu(t) and t.dtype in KERNEL_DTYPES


def _on_gpu(t: torch.Tensor) -> bool:
    return t.is_cuda


def mamba1_available() -> bool:
    return selective_scan_fn is not None and torch.cuda.is_available()


def mamba2_available() -> bool:
    return mamba_chunk_scan_combined is not None and rmsnorm_fn is not None and torch.cuda.is_available()
