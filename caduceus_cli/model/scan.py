"""The selective scan of Mamba-1, the one recurrence in the model, with its gate.

    delta_t = softplus(dt_t + dt_bias)
    s_t = exp(delta_t * A) * s_{t-1} + (delta_t * u_t) B_t        s: (E, N) per sequence
    y_t = (s_t . C_t + D * u_t) * silu(z_t)

`selective_scan` is the one entry point. By device and dtype it runs:

- CUDA, float32 / half precision, mamba-ssm installed: mamba-ssm's fused kernel (cuda_kernels.py).
- CPU, float32 / bfloat16: the compiled kernels (compiled.py, cpu_kernels.py: numba, SIMD over
  channels, blocks of channels on `torch.get_num_threads()` threads, forward and backward),
  computing in float32.
- everything else (float64, or where the compiled kernels cannot load): the chunked PyTorch
  formulation below, the exact reference. Within a chunk of T positions the states are a
  cumulative sum,

      s_t = P_t * (s_0 + sum_{k<=t} (delta_k u_k B_k) / P_k),    P_t = exp(cumsum_{k<=t} delta_k A),

  so a chunk is a handful of whole-tensor operations and only chunks are looped over in Python.
  1/P_k grows as the state decays, so a chunk whose total decay would cost precision is scanned by
  recursive doubling instead, which never divides by a decay.

`reverse` runs the recurrence from the last position to the first (the reverse direction of a
BiMamba) in forward coordinates: the compiled kernel reads its inputs backwards, the other paths
flip them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from caduceus_cli.model import compiled, cuda_kernels

CHUNK = 32
# Largest total log-decay allowed inside one chunk: 1/P_k = e^limit must stay well inside the
# dtype's range. (P_k itself is computed in float64 and rounded once, so precision does not
# depend on the limit.)
_DECAY_LIMIT = {torch.float32: 60.0, torch.float64: 600.0}


def selective_scan(
    u: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    dt_bias: torch.Tensor,
    z: torch.Tensor,
    reverse: bool = False,
) -> torch.Tensor:
    """The gated scan y * silu(z) with delta = softplus(dt + dt_bias). u, dt, z: (batch, L, E) in the
    model dtype (dt before its bias); A: (E, N); B, C: (batch, L, N); D, dt_bias: (E,). Returns
    (batch, L, E) in u's dtype. `reverse` scans from the last position to the first. Bias, softplus
    and gate are applied in at least float32, as mamba-ssm's kernel does inside."""
    if cuda_kernels.serves(u, cuda_kernels.selective_scan_fn):
        return _flipped(_kernel_scan, reverse, u, dt, A, B, C, D, dt_bias, z)
    if compiled.serves(u):
        return compiled.scan(u, dt, A, B, C, D, dt_bias, z, reverse)
    return _flipped(reference_scan, reverse, u, dt, A, B, C, D, dt_bias, z)


def reference_scan(u, dt, A, B, C, D, dt_bias, z):
    """The exact PyTorch path, forward direction: bias and softplus, the chunked scan, the gate."""
    compute = torch.promote_types(u.dtype, torch.float32)
    delta = F.softplus(dt.to(compute) + dt_bias.to(compute))
    return chunked_scan(u, delta, A, B, C, D) * F.silu(z)


def _flipped(scan, reverse, u, dt, A, B, C, D, dt_bias, z):
    """A forward-only scan, run in reverse by flipping its sequence inputs and its output."""
    if not reverse:
        return scan(u, dt, A, B, C, D, dt_bias, z)
    u, dt, B, C, z = (t.flip(1) for t in (u, dt, B, C, z))
    return scan(u, dt, A, B, C, D, dt_bias, z).flip(1)


def _kernel_scan(u, dt, A, B, C, D, dt_bias, z):
    """mamba-ssm's kernel: (batch, channels, L) with L contiguous; u, delta, B, C, z in one dtype (it
    checks), A, D and the delta bias in float32."""

    def channels_first(t: torch.Tensor) -> torch.Tensor:  # one copy: cast and layout together
        return t.transpose(1, 2).to(u.dtype, memory_format=torch.contiguous_format).contiguous()

    y = cuda_kernels.selective_scan_fn(
        *(channels_first(t) for t in (u, dt)),
        A.float(),
        *(channels_first(t) for t in (B, C)),
        D.float(),
        z=channels_first(z),
        delta_bias=dt_bias.float(),
        delta_softplus=True,
    )
    return y.transpose(1, 2)


def chunked_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """Portable scan: loops over chunks of `chunk` positions, never over single positions. Computes in
    at least float32 and returns y in u's dtype."""
    out_dtype = u.dtype
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C, D = (t.to(dtype) for t in (u, delta, A, B, C, D))
    batch, length, inner = u.shape
    state = u.new_zeros(batch, inner, A.shape[1])
    ys = []
    # split, not slicing: its backward is one concatenation instead of a zero-filled full-size
    # gradient per chunk, which made training quadratic in the length
    for parts in zip(*(t.split(chunk, dim=1) for t in (u, delta, B, C)), strict=True):
        y, state = _scan_chunk(*parts[:2], A, *parts[2:], state)
        ys.append(y)
    y = torch.cat(ys, dim=1) if ys else u.new_zeros(batch, 0, inner)
    return (y + u * D).to(out_dtype)


def _scan_chunk(u, delta, A, B, C, state):
    """One chunk: (batch, T, E) inputs and the (batch, E, N) state before it -> y (no D term), new state."""
    # cumulative log-decay in float64: its rounding error would otherwise be amplified by exp()
    log_decay = torch.cumsum(delta.unsqueeze(-1).double() * A.double(), dim=1)  # (batch, T, E, N), <= 0
    inputs = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # (batch, T, E, N): delta_k u_k B_k
    if -log_decay[:, -1].min() <= _DECAY_LIMIT[u.dtype]:
        decay, growth = torch.exp(log_decay).to(u.dtype), torch.exp(-log_decay).to(u.dtype)
        states = decay * (state.unsqueeze(1) + torch.cumsum(inputs * growth, dim=1))
    else:
        states = _doubling_scan(torch.exp(delta.unsqueeze(-1) * A), inputs, state)
    y = torch.einsum("bten,btn->bte", states, C)
    return y, states[:, -1]


def _doubling_scan(step_decay: torch.Tensor, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """States of s_t = a_t s_{t-1} + b_t by recursive doubling (log2 T whole-chunk steps). Only
    products of decays <= 1 are formed, so it is stable however fast the state decays; it costs
    about twice the cumulative-sum form, which is why it only runs on chunks that need it."""
    a, b = step_decay, inputs
    b = torch.cat([b[:, :1] + a[:, :1] * state.unsqueeze(1), b[:, 1:]], dim=1)
    shift = 1
    while shift < a.shape[1]:
        # out of place, so autograd can train through it
        b = torch.cat([b[:, :shift], b[:, shift:] + a[:, shift:] * b[:, :-shift]], dim=1)
        a = torch.cat([a[:, :shift], a[:, shift:] * a[:, :-shift]], dim=1)
        shift *= 2
    return b
