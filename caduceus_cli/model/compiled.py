"""The compiled CPU kernels (cpu_kernels.py) seen from PyTorch: loading, threads, autograd.

Each kernel call handles one sequence and one block of channels (the SSD: one head); the blocks of a call are shared
out over `torch.get_num_threads()` threads (the calling thread included), since the kernels release
the GIL. They serve float32 and bfloat16 CPU tensors (computing in float32); float64 runs the
exact PyTorch reference instead, and so does everything when the kernels cannot load (one warning)
or when CADUCEUS_CPU_SCAN=reference (or `use_cpu_scan("reference")`) asks for it.
"""

from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np
import torch

log = logging.getLogger("caduceus")

CPU_SCANS = ("compiled", "reference")
_SERVED_DTYPES = (torch.float32, torch.bfloat16)
# Channels per kernel call: a 16 x 128 float32 state and the block's parameters stay in L1
# (measured at E = 512: 128 beat 64 and 256). Positions per recomputed chunk in the backward: its
# states and decays, 2 x 32 x 16 x 128 floats, fit in L2.
_BLOCK = 128
_BACKWARD_CHUNK = 32

_choice = os.environ.get("CADUCEUS_CPU_SCAN", "compiled")
_kernels: ModuleType | bool | None = None  # the cpu_kernels module once loaded; False if it cannot load
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def use_cpu_scan(name: str) -> str:
    """Choose the CPU path, "compiled" or "reference"; returns the previous choice."""
    global _choice
    if name not in CPU_SCANS:
        raise ValueError(f"CPU scan must be one of {CPU_SCANS}, got {name!r}")
    previous, _choice = _choice, name
    return previous


def kernels() -> ModuleType | None:
    """The cpu_kernels module, or None where it was not chosen or cannot load."""
    global _kernels
    if _choice != "compiled":
        return None
    if _kernels is None:
        try:
            from caduceus_cli.model import cpu_kernels

            _compile_inference_kernels(cpu_kernels)
            _kernels = cpu_kernels
        except Exception as err:  # any failure to load or compile falls back to the reference, never crashes
            log.warning("compiled CPU kernels unavailable (%s: %s); using the slower PyTorch scan",
                        type(err).__name__, err)
            _kernels = False
    return _kernels or None


def _compile_inference_kernels(module: ModuleType) -> None:
    """Run the forward kernels once on a few floats, so that compiling (or loading them from the cache)
    happens here, where a failure can still fall back; the backward kernels compile on first use."""
    seq, states, out = np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 1), np.float32), np.zeros((1, 2, 2), np.float32)
    channels, params = np.zeros((1, 2), np.float32), np.zeros(2, np.float32)
    starts = np.zeros((0, 1, 2), np.float32)
    module.scan_block(seq, seq, seq, states, states, channels, params, params, out, starts, 0, 0, 2, False, 1)
    module.conv_silu_block(np.zeros((1, 2, 4), np.float32), np.zeros((4, 2), np.float32), params, out, 0, 0, 2, False, 0)
    heads = np.zeros(1, np.float32)  # one head of 2 channels, d_state 1: xbc holds x (2), B (1), C (1)
    xbc, wide = np.zeros((1, 2, 4), np.float32), np.zeros((1, 2, 5), np.float32)  # z: a view, as in the model
    module.ssd_head(xbc, states, wide[:, :, :2], heads, params, heads, out, 0, 0, 2, 1, 1, False)
    rows = np.zeros((2, 4), np.float32)
    module.group_rms_norm_rows(rows, np.ones(4, np.float32), rows, 0, 2, 2, np.float32(1e-5))


def serves(x: torch.Tensor) -> bool:
    """Whether the compiled kernels run for this CPU tensor."""
    return not x.is_cuda and x.dtype in _SERVED_DTYPES and kernels() is not None


def describe() -> str:
    """What runs the scan on the CPU, for `caduceus doctor` and logs."""
    if kernels() is None:
        return f"PyTorch chunked scan (reference, {torch.get_num_threads()} threads)"
    return f"compiled scan (numba, {torch.get_num_threads()} threads)"


# --- work items and threads ----------------------------------------------------------------------
def _blocks(batch: int, inner: int, block: int = _BLOCK) -> list[tuple[int, int, int]]:
    """(sequence, first channel, end channel) work items: blocks of `block` channels, narrower while
    there would be fewer items than threads."""
    threads = torch.get_num_threads()
    width = min(block, inner)
    while width > 16 and batch * -(-inner // width) < threads:
        width //= 2
    return [(b, e0, min(inner, e0 + width)) for b in range(batch) for e0 in range(0, inner, width)]


def _run_parallel(work, items: list) -> None:
    """work(index, item) for every item, shared out over torch.get_num_threads() threads."""
    global _pool, _pool_size
    threads = min(torch.get_num_threads(), len(items))
    shares = [range(first, len(items), threads) for first in range(threads)]

    def run(indices: range) -> None:
        for i in indices:
            work(i, items[i])

    if threads - 1 > _pool_size:  # the calling thread is one of them
        _pool, _pool_size = ThreadPoolExecutor(threads - 1, thread_name_prefix="caduceus-kernel"), threads - 1
    futures = [_pool.submit(run, share) for share in shares[1:]]
    run(shares[0])
    for future in futures:
        future.result()


# --- the causal conv + SiLU, with autograd -------------------------------------------------------
def conv_silu(
    projected: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, reverse: bool, first: int
) -> torch.Tensor:
    """silu(causal depthwise conv) of x = projected[..., first:first + C], read in place from the
    (B, L, >= first + C) in_proj output; weight: (C, K). Computes in float32 (float64 for float64 inputs)."""
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    return _CompiledConvSilu.apply(projected, weight, bias, reverse, first)


class _CompiledConvSilu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xz, weight, bias, reverse, first):
        compute = torch.promote_types(xz.dtype, torch.float32)
        inputs = [t.detach().to(compute).contiguous() for t in (xz, weight.t(), bias)]
        channels = weight.shape[0]
        out = xz.new_empty(xz.shape[0], xz.shape[1], channels, dtype=compute)
        arrays = [t.numpy() for t in (*inputs, out)]
        kernel = kernels().conv_silu_block
        # all channels of a position at once: the conv keeps no state, and per-call costs dominate narrow blocks
        items = _blocks(xz.shape[0], channels, block=channels)
        _run_parallel(lambda _, item: kernel(*arrays, *item, reverse, first), items)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(*inputs)
            ctx.reverse, ctx.first = reverse, first
            ctx.dtypes = [t.dtype for t in (xz, weight, bias)]
        return out.to(xz.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        xz, weight_t, bias = ctx.saved_tensors
        items = _blocks(xz.shape[0], weight_t.shape[1], block=weight_t.shape[1])
        dxz = torch.zeros_like(xz)  # the channels outside the conv get no gradient from it
        dweight = [xz.new_zeros(weight_t.shape[0], e1 - e0) for _, e0, e1 in items]
        dbias = [xz.new_zeros(e1 - e0) for _, e0, e1 in items]
        grad = grad_out.to(xz.dtype).contiguous()
        arrays = [t.numpy() for t in (xz, weight_t, bias, grad, dxz)]
        kernel = kernels().conv_silu_block_backward
        _run_parallel(
            lambda i, item: kernel(*arrays, dweight[i].numpy(), dbias[i].numpy(), *item, ctx.reverse, ctx.first),
            items,
        )
        channels = weight_t.shape[1]
        grads = (dxz, _join_channels(dweight, items, channels).t(), _join_channels(dbias, items, channels))
        return (*(g.to(dtype) for g, dtype in zip(grads, ctx.dtypes, strict=True)), None, None)


# --- the gated selective scan, with autograd ------------------------------------------------------
def scan(u, dt, A, B, C, D, dt_bias, z, reverse: bool = False) -> torch.Tensor:
    """scan.selective_scan through the compiled kernels, with autograd. Computes in float32, or in
    float64 for float64 inputs (how its gradients are checked against the reference)."""
    return _CompiledScan.apply(u, dt, A, B, C, D, dt_bias, z, reverse)


def _kernel_inputs(u, dt, A, B, C, D, dt_bias, z) -> list[torch.Tensor]:
    """Contiguous tensors in the kernels' argument order and compute dtype, A transposed to (N, E)."""
    compute = torch.promote_types(u.dtype, torch.float32)
    return [t.detach().to(compute).contiguous() for t in (u, dt, z, B, C, A.t(), D, dt_bias)]


class _CompiledScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dt, A, B, C, D, dt_bias, z, reverse):
        inputs = _kernel_inputs(u, dt, A, B, C, D, dt_bias, z)
        out = torch.empty_like(inputs[0])
        arrays = [t.numpy() for t in (*inputs, out)]
        items = _blocks(u.shape[0], u.shape[2])
        training = any(ctx.needs_input_grad)
        # the states the backward starts its chunks from, per item (none for inference)
        n_chunks = -(-u.shape[1] // _BACKWARD_CHUNK) if training else 0
        starts = [out.new_empty(n_chunks, A.shape[1], e1 - e0) for _, e0, e1 in items]
        kernel = kernels().scan_block
        _run_parallel(
            lambda i, item: kernel(*arrays, starts[i].numpy(), *item, reverse, _BACKWARD_CHUNK), items
        )
        if training:
            ctx.save_for_backward(*inputs)
            ctx.starts, ctx.items, ctx.reverse = starts, items, reverse
            ctx.dtypes = [t.dtype for t in (u, dt, A, B, C, D, dt_bias, z)]
        return out.to(u.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        inputs = ctx.saved_tensors
        batch, length, inner = inputs[0].shape
        n_state = inputs[3].shape[2]
        zeros = functools.partial(torch.zeros, dtype=inputs[0].dtype)
        du, ddt, dz = (torch.empty_like(inputs[0]) for _ in range(3))
        items = ctx.items
        # each item's own partial sums: B and C gradients sum over channels, the parameters' over sequences
        dB, dC = (zeros(len(items), length, n_state) for _ in range(2))
        dA = [zeros(n_state, e1 - e0) for _, e0, e1 in items]
        dD, dbias = ([zeros(e1 - e0) for _, e0, e1 in items] for _ in range(2))
        grad = grad_out.to(inputs[0].dtype).contiguous()
        arrays = [t.numpy() for t in inputs]
        outputs = [t.numpy() for t in (grad, du, ddt, dz)]
        kernel = kernels().scan_block_backward

        def work(i, item):
            parts = (dB[i].numpy(), dC[i].numpy(), dA[i].numpy(), dD[i].numpy(), dbias[i].numpy())
            kernel(*arrays, ctx.starts[i].numpy(), *outputs, *parts, *item, ctx.reverse, _BACKWARD_CHUNK)

        _run_parallel(work, items)
        sequence = torch.tensor([b for b, _, _ in items])
        grad_B, grad_C = (zeros(batch, length, n_state).index_add_(0, sequence, p) for p in (dB, dC))
        grad_A, grad_D, grad_bias = (_join_channels(parts, items, inner) for parts in (dA, dD, dbias))
        grads = (du, ddt, grad_A.t(), grad_B, grad_C, grad_D, grad_bias, dz)
        return (*(g.to(dtype) for g, dtype in zip(grads, ctx.dtypes, strict=True)), None)


def _join_channels(parts: list[torch.Tensor], items, inner: int) -> torch.Tensor:
    """Per-item (..., W) partial sums -> (..., E), summed over sequences."""
    total = parts[0].new_zeros(*parts[0].shape[:-1], inner)
    for part, (_, e0, e1) in zip(parts, items, strict=True):
        total[..., e0:e1] += part
    return total


# --- the SSD of Mamba-2 and its norm (inference only) -------------------------------------------
def ssd(xbc: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, D: torch.Tensor, dt_bias: torch.Tensor,
        z: torch.Tensor, headdim: int, d_state: int, heads_per_group: int, reverse: bool) -> torch.Tensor:  # fmt: skip
    """ssd.ssd through the compiled kernel: xbc (B, L, d_inner + 2 G N) conv output, dt (B, L, heads) and
    z (B, L, d_inner) (a view of the in_proj output: read in place) -> (B, L, d_inner) in xbc's dtype.
    A, dt_bias: (heads,); D: (heads,) or (d_inner,). Computes in float32 (float64 for float64 inputs);
    no autograd (training runs the reference)."""
    compute = torch.promote_types(xbc.dtype, torch.float32)
    heads = A.shape[0]
    inner = heads * headdim
    per_channel = D if D.shape[0] == inner else D.repeat_interleave(headdim)
    inputs = [t.detach().to(compute).contiguous() for t in (xbc, dt)] + [z.detach().to(compute)]
    inputs += [t.detach().to(compute).contiguous() for t in (A, per_channel, dt_bias)]
    out = xbc.new_empty(xbc.shape[0], xbc.shape[1], inner, dtype=compute)
    arrays = [t.numpy() for t in (*inputs, out)]
    kernel = kernels().ssd_head
    items = [(b, h) for b in range(xbc.shape[0]) for h in range(heads)]
    _run_parallel(lambda _, item: kernel(*arrays, *item, headdim, d_state, heads_per_group, reverse), items)
    return out.to(xbc.dtype)


def group_rms_norm(v: torch.Tensor, weight: torch.Tensor, group_size: int, eps: float) -> torch.Tensor:
    """mamba2.GroupRMSNorm through the compiled kernel: (B, L, E) -> (B, L, E) in v's dtype; blocks of
    positions on the threads. No autograd."""
    compute = torch.promote_types(v.dtype, torch.float32)
    rows = v.shape[0] * v.shape[1]
    values = v.detach().to(compute).reshape(rows, -1).contiguous()
    out = torch.empty_like(values)
    arrays = [t.numpy() for t in (values, weight.detach().to(compute).contiguous(), out)]
    kernel = kernels().group_rms_norm_rows
    threads = torch.get_num_threads()
    items = [(rows * i // threads, rows * (i + 1) // threads) for i in range(threads)]
    eps = arrays[0].dtype.type(eps)  # typed, so float32 math stays float32
    _run_parallel(lambda _, item: kernel(*arrays, *item, group_size, eps), items)
    return out.reshape(v.shape).to(v.dtype)
