"""The causal depthwise conv + SiLU both mixers run on their in_proj output (Mamba-1 on x, Mamba-2 on
x, B and C together), read in place from that output."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from caduceus_cli.model import compiled


def conv_silu(projected: torch.Tensor, conv1d: nn.Conv1d, first: int, reverse: bool = False) -> torch.Tensor:
    """silu(causal depthwise conv) of the channels projected[..., first:first + C], C = conv1d's channels:
    (B, L, C). `reverse` runs the conv from the end of the sequence (see causal_conv)."""
    weight = conv1d.weight[:, 0, :]  # (C, K)
    if compiled.serves(projected):  # one pass over the channels instead of 2K + 1
        return compiled.conv_silu(projected, weight, conv1d.bias, reverse, first)
    channels = projected[..., first : first + weight.shape[0]]
    return F.silu(causal_conv(channels, weight, conv1d.bias, reverse))


def causal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, reverse: bool = False) -> torch.Tensor:
    """Depthwise causal conv along L of x (B, L, C) with weight (C, K): out[t] = bias + sum_k w[k] *
    x[t - (K-1) + k], zeros before the start; `reverse` is the same conv run from the end
    (x[t + (K-1) - k], zeros after the end), which is the causal conv of the flipped sequence, flipped
    back. Written as K shifted multiply-adds on (B, L, C): no transposes, and fast in every dtype on the
    CPU."""
    size, length = weight.shape[1], x.shape[1]
    if reverse:
        padded = F.pad(x, (0, 0, 0, size - 1))
        out = sum(padded[:, size - 1 - k : size - 1 - k + length] * weight[:, k] for k in range(size))
    else:
        padded = F.pad(x, (0, 0, size - 1, 0))
        out = sum(padded[:, k : k + length] * weight[:, k] for k in range(size))
    return out if bias is None else out + bias
