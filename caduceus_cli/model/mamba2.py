"""The Mamba-2 mixer (mamba-ssm's `Mamba2`), one direction of a PlantCAD2 BiMamba.

    h (B, L, d) -> in_proj -> [z (E) | x, B, C (E + 2 G N) | dt (heads)]
      x, B, C -> causal depthwise conv -> SiLU
      y = ssd(x, dt, A, B, C, D) * silu(z)       (ssd.py; A = -exp(A_log): one scalar per head)
      y = rmsnorm(y) * weight                    the gate BEFORE the norm; RMS over each group's E / G
                                                 channels, eps fixed at 1e-5
    -> out_proj -> (B, L, d)

E = d_inner = heads x headdim; G groups share B and C (N = d_state each).
"""

from __future__ import annotations

import torch
from torch import nn

from caduceus_cli.model import compiled, cuda_kernels
from caduceus_cli.model.config import CaduceusConfig, Mamba2Config
from caduceus_cli.model.conv import conv_silu
from caduceus_cli.model.ssd import ssd


class GroupRMSNorm(nn.Module):
    """The norm of mamba-ssm's gated RMSNorm, after its gate (which ssd applies): x / rms(x) * weight, the
    RMS over groups of `group_size` channels. Computes in at least float32; returns x's dtype. On the CPU
    in float32 / bfloat16 (no gradient wanted) one compiled pass (compiled.py), else the PyTorch below."""

    def __init__(self, d: int, group_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.group_size, self.eps = group_size, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, E) -> (B, L, E)."""
        if cuda_kernels.serves(x, cuda_kernels.rmsnorm_fn):
            return cuda_kernels.rmsnorm_fn(
                x, self.weight, None, eps=self.eps, group_size=self.group_size, norm_before_gate=False
            )
        if compiled.serves(x) and not (torch.is_grad_enabled() and self.weight.requires_grad):
            return compiled.group_rms_norm(x, self.weight, self.group_size, self.eps)
        compute = torch.promote_types(x.dtype, torch.float32)
        groups = x.to(compute).unflatten(-1, (-1, self.group_size))  # (B, L, G, E / G)
        normed = groups * torch.rsqrt(groups.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed.flatten(-2) * self.weight.to(compute)).to(x.dtype)


class Mamba2(nn.Module):
    """One direction of a BiMamba: in_proj, causal conv, SSD, gated norm, out_proj. The reverse
    direction of a weight-tied block has no in_proj/out_proj of its own (`with_projections=False`):
    BiMamba runs it through `gated_ssm` on the forward direction's in_proj output."""

    def __init__(self, config: CaduceusConfig, with_projections: bool = True):
        super().__init__()
        mixer: Mamba2Config = config.mixer
        d, inner, heads = config.d_model, mixer.d_inner, mixer.nheads
        if with_projections:
            self.in_proj = nn.Linear(d, mixer.in_proj_dim, bias=mixer.bias)
        self.conv1d = nn.Conv1d(
            mixer.conv_dim,
            mixer.conv_dim,
            mixer.d_conv,
            groups=mixer.conv_dim,
            padding=mixer.d_conv - 1,
            bias=mixer.conv_bias,
        )
        self.dt_bias = nn.Parameter(torch.zeros(heads))
        self.A_log = nn.Parameter(torch.zeros(heads))
        self.D = nn.Parameter(torch.ones(inner if mixer.d_has_hdim else heads))
        self.norm = GroupRMSNorm(inner, inner // mixer.ngroups, Mamba2Config.NORM_EPS)
        if with_projections:
            self.out_proj = nn.Linear(inner, d, bias=mixer.bias)
        self.config = mixer

    def forward(self, h: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """(B, L, d) -> (B, L, d). `reverse` runs this direction from the last position to the first,
        in forward coordinates: flipL(M(flipL(h))) without the copies (the projections are per position)."""
        return self.out_proj(self.gated_ssm(self.in_proj(h), reverse))

    def gated_ssm(self, zxbcdt: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Everything between the projections: the (B, L, in_proj_dim) in_proj output -> the gated,
        normed SSD output (B, L, E)."""
        inner = self.config.d_inner
        z, dt = zxbcdt[..., :inner], zxbcdt[..., inner + self.config.conv_dim :]
        xbc = conv_silu(zxbcdt, self.conv1d, inner, reverse)  # (B, L, E + 2 G N)
        compute = torch.promote_types(xbc.dtype, torch.float32)
        A = -torch.exp(self.A_log.to(compute))  # (heads,)
        return self.norm(ssd(xbc, dt, A, self.D.to(compute), self.dt_bias, z, self.config, reverse))
