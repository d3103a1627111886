"""Choosing the device and precision a command runs on."""

from __future__ import annotations

import torch

from caduceus_cli.errors import DeviceUnavailableError, UsageError

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks the first visible GPU (CUDA_VISIBLE_DEVICES applies) or the CPU."""
    if name == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"--device {name}: not a device name (use auto, cpu, cuda or cuda:N)") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(f"--device {name}: no usable CUDA GPU (torch {torch.__version__})")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible (CUDA_VISIBLE_DEVICES applies)"
            )
        return torch.device("cuda", index)
    if device.type != "cpu":
        raise UsageError(f"--device {name}: unsupported device type {device.type!r} (use cpu or cuda)")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto` is bfloat16 on GPUs that support it (the speed the published models were run at), else float32."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if name not in DTYPES:
        raise UsageError(f"--dtype {name}: use one of auto, {', '.join(DTYPES)}")
    if device.type == "cpu" and DTYPES[name] in (torch.float16,):
        raise UsageError(f"--dtype {name}: not supported on the CPU; use float32, float64 or bfloat16")
    return DTYPES[name]
