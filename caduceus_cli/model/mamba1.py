"""The Mamba-1 mixer (mamba-ssm's `Mamba`), one direction of a Caduceus or PlantCaduceus BiMamba.

    h (B, L, d) -> in_proj -> [x | z] (2 x E)
      x -> causal depthwise conv -> SiLU -> x_proj -> [dt_low | B | C] -> dt = dt_proj(dt_low)
      y = selective_scan(x, dt, A, B, C, D) * silu(z)      (scan.py; A = -exp(A_log): (E, N))
    -> out_proj -> (B, L, d)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from caduceus_cli.model.config import CaduceusConfig
from caduceus_cli.model.conv import conv_silu
from caduceus_cli.model.scan import selective_scan


class Mamba(nn.Module):
    """One direction of a BiMamba: in_proj, causal conv, selective SSM, gate, out_proj. The reverse
    direction of a weight-tied block has no in_proj/out_proj of its own (`with_projections=False`):
    BiMamba runs it through `gated_ssm` on the forward direction's in_proj output."""

    def __init__(self, config: CaduceusConfig, with_projections: bool = True):
        super().__init__()
        mixer = config.mixer
        d, inner, rank, n = config.d_model, mixer.d_inner, mixer.dt_rank, mixer.d_state
        if with_projections:
            self.in_proj = nn.Linear(d, 2 * inner, bias=mixer.bias)
        self.conv1d = nn.Conv1d(
            inner, inner, mixer.d_conv, groups=inner, padding=mixer.d_conv - 1, bias=mixer.conv_bias
        )
        self.x_proj = nn.Linear(inner, rank + 2 * n, bias=False)
        self.dt_proj = nn.Linear(rank, inner, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        if with_projections:
            self.out_proj = nn.Linear(inner, d, bias=mixer.bias)
        self.rank, self.d_state = rank, n

    def forward(self, h: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """(B, L, d) -> (B, L, d). `reverse` runs this direction from the last position to the first,
        in forward coordinates: flipL(M(flipL(h))) without the copies (the projections are per position)."""
        return self.out_proj(self.gated_ssm(self.in_proj(h), reverse))

    def gated_ssm(self, xz: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Everything between the projections: xz (B, L, 2E) in_proj output -> y * silu(z) (B, L, E)."""
        z = xz[..., xz.shape[-1] // 2 :]
        x = conv_silu(xz, self.conv1d, 0, reverse)
        dt_low, B, C = self.x_proj(x).split([self.rank, self.d_state, self.d_state], dim=-1)
        scan_dtype = torch.promote_types(x.dtype, torch.float32)
        A = -torch.exp(self.A_log.to(scan_dtype))  # (E, N)
        # the dt bias, softplus and gate are applied inside the scan, as in mamba-ssm's kernel
        dt = F.linear(dt_low, self.dt_proj.weight)
        return selective_scan(x, dt, A, B, C, self.D.to(scan_dtype), self.dt_proj.bias, z, reverse)
