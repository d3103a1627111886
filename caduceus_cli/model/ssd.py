"""The SSD of Mamba-2 (state space duality), the recurrence of its mixer, with its gate.

For head h of P channels in group g (B and C are shared by the heads of a group), per sequence:

    delta_t = softplus(dt_t + dt_bias_h),   a_t = delta_t * A_h  (A_h = -exp(A_log_h): one scalar per head)
    s_t = exp(a_t) s_{t-1} + delta_t x_t B_t^T          s: (P, N)
    y_t = (s_t C_t + D_h x_t) * silu(z_t)

(mamba-ssm's Mamba2 gates in its norm, rms(y * silu(z)): the same numbers, with the gate applied where
the kernels read z anyway.)

`ssd` is the one entry point. By device and dtype it runs:

- CUDA, float32 / half precision, mamba-ssm installed: its `mamba_chunk_scan_combined` (cuda_kernels.py).
- CPU, float32 / bfloat16, no gradient wanted: the compiled kernel (compiled.py, cpu_kernels.py: numba,
  one head per call, heads on `torch.get_num_threads()` threads), computing in float32.
- everything else (float64, training, or where the compiled kernels cannot load): the chunked PyTorch
  form below, the exact reference. It is the SSD's own matrix form, chunk by chunk of T positions:
  with c_t = sum_{k<=t} a_k inside the chunk (computed in float64, so exp never sees its rounding),

      y_t = sum_{s<=t} exp(c_t - c_s) (C_t . B_s) delta_s x_s  +  exp(c_t) s_0 C_t  +  D x_t
      s_T = exp(c_T) s_0 + sum_s exp(c_T - c_s) delta_s x_s B_s^T

  where s_0 is the state entering the chunk. Every exponent is <= 0, so nothing overflows however fast
  the state decays, and the result does not depend on T beyond rounding.

`reverse` runs the recurrence from the last position to the first in forward coordinates: the
compiled kernel reads its inputs backwards, the other paths flip them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from caduceus_cli.model import compiled, cuda_kernels
from caduceus_cli.model.config import Mamba2Config


def ssd(
    xbc: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    D: torch.Tensor,
    dt_bias: torch.Tensor,
    z: torch.Tensor,
    mixer: Mamba2Config,
    reverse: bool = False,
) -> torch.Tensor:
    """The gated SSD. xbc: (B, L, d_inner + 2 G N) the conv's output [x | B | C]; dt: (B, L, heads) before
    its bias; z: (B, L, d_inner) (views of the in_proj output); A, dt_bias: (heads,) (A already
    -exp(A_log)); D: (heads,) or (d_inner,). Returns (B, L, d_inner) in xbc's dtype. The dt bias, softplus
    and gate are applied in at least float32."""
    if cuda_kernels.serves(xbc, cuda_kernels.mamba_chunk_scan_combined):
        return _flipped(_kernel_ssd, reverse, xbc, dt, A, D, dt_bias, z, mixer)
    wants_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (xbc, dt, A, D, dt_bias, z))
    if compiled.serves(xbc) and not wants_grad:
        heads_per_group = mixer.nheads // mixer.ngroups
        return compiled.ssd(xbc, dt, A, D, dt_bias, z, mixer.headdim, mixer.d_state, heads_per_group, reverse)
    return _flipped(reference_ssd, reverse, xbc, dt, A, D, dt_bias, z, mixer)


def _flipped(run, reverse, xbc, dt, A, D, dt_bias, z, mixer):
    """A forward-only SSD, run in reverse by flipping its sequence inputs and its output."""
    if not reverse:
        return run(xbc, dt, A, D, dt_bias, z, mixer)
    return run(xbc.flip(1), dt.flip(1), A, D, dt_bias, z.flip(1), mixer).flip(1)


def _split(xbc: torch.Tensor, mixer: Mamba2Config):
    """xbc -> x (B, L, heads, P), B and C (B, L, G, N): views."""
    group_width = mixer.ngroups * mixer.d_state
    x, B, C = xbc.split([mixer.d_inner, group_width, group_width], dim=-1)
    return (
        x.unflatten(-1, (mixer.nheads, mixer.headdim)),
        B.unflatten(-1, (mixer.ngroups, mixer.d_state)),
        C.unflatten(-1, (mixer.ngroups, mixer.d_state)),
    )


def _kernel_ssd(xbc, dt, A, D, dt_bias, z, mixer):
    """mamba-ssm's chunked SSD: x, B, C and z as strided views in one dtype, A, D and the dt bias in
    float32, the softplus and the gate inside."""
    x, B, C = _split(xbc, mixer)
    y = cuda_kernels.mamba_chunk_scan_combined(
        x,
        dt,
        A.float(),
        B,
        C,
        chunk_size=mixer.chunk_size,
        D=D.float().unflatten(0, (mixer.nheads, mixer.headdim)) if D.shape[0] != mixer.nheads else D.float(),
        z=z.unflatten(-1, (mixer.nheads, mixer.headdim)),
        dt_bias=dt_bias.float(),
        dt_softplus=True,
    )
    return y.flatten(-2)


def reference_ssd(xbc, dt, A, D, dt_bias, z, mixer, chunk: int | None = None):
    """The exact PyTorch path, forward direction, in chunks of `chunk` positions (default: the mixer's,
    256): (B, L, d_inner) in xbc's dtype, computed in at least float32."""
    chunk = chunk or mixer.chunk_size
    compute = torch.promote_types(xbc.dtype, torch.float32)
    x, B, C = (t.to(compute) for t in _split(xbc, mixer))
    group = torch.arange(mixer.nheads, device=xbc.device) // (mixer.nheads // mixer.ngroups)
    B, C = B[:, :, group], C[:, :, group]  # (B, L, heads, N): each head its group's B and C
    delta = F.softplus(dt.to(compute) + dt_bias.to(compute))  # (B, L, heads)
    log_decay = delta.double() * A.double()
    batch, length = x.shape[:2]
    state = x.new_zeros(batch, mixer.nheads, mixer.headdim, mixer.d_state)  # (B, heads, P, N)
    ys = []
    for parts in zip(*(t.split(chunk, dim=1) for t in (x, B, C, delta, log_decay)), strict=True):
        y, state = _ssd_chunk(*parts, state)
        ys.append(y)
    y = torch.cat(ys, dim=1) if ys else x.new_zeros(x.shape)
    skip = D.to(compute).reshape(-1, mixer.headdim if D.shape[0] != mixer.nheads else 1)  # (heads, P or 1)
    return ((y + x * skip).flatten(-2) * F.silu(z.to(compute))).to(xbc.dtype)


def _ssd_chunk(x, B, C, delta, log_decay, state):
    """One chunk of T positions: x (B, T, heads, P), B, C (B, T, heads, N), delta (B, T, heads) and its
    float64 log-decay, the (B, heads, P, N) state entering it -> y without the D term, the state after."""
    dtype = x.dtype
    cumulative = log_decay.cumsum(dim=1)  # (B, T, heads): c_t
    # exp(c_t - c_s) for s <= t, 0 above the diagonal (masked before exp: c_t - c_s > 0 there)
    gaps = cumulative[:, :, None, :] - cumulative[:, None, :, :]  # (B, t, s, heads)
    causal = torch.ones(gaps.shape[1], gaps.shape[2], dtype=torch.bool, device=x.device).tril()
    decay = torch.exp(gaps.masked_fill(~causal[None, :, :, None], float("-inf"))).to(dtype)
    weights = torch.einsum("bthn,bshn->btsh", C, B) * decay  # (B, t, s, heads)
    delta_x = delta.unsqueeze(-1) * x  # (B, T, heads, P)
    y = torch.einsum("btsh,bshp->bthp", weights, delta_x)
    y = y + torch.exp(cumulative).to(dtype).unsqueeze(-1) * torch.einsum("bthn,bhpn->bthp", C, state)
    to_end = torch.exp(cumulative[:, -1:] - cumulative).to(dtype)  # (B, T, heads): exp(c_T - c_s)
    state = torch.exp(cumulative[:, -1]).to(dtype)[..., None, None] * state + torch.einsum(
        "bsh,bshp,bshn->bhpn", to_end, delta_x, B
    )
    return y, state
