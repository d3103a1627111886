"""The time floor of one Caduceus forward pass, counted kernel by kernel: pure arithmetic, runs anywhere.

For each kernel of one layer, per base: the bytes it must read and write in HBM (activations in the
given dtype; weights are small and stay in cache), its matrix-product FLOPs, its other FLOPs and
its exponentials (special-function unit work). Each kernel's floor is the largest of bytes /
bandwidth, matmul FLOPs / matmul rate, other FLOPs / vector rate and exponentials / SFU rate; a
layer's floor is their sum, a pass is n_layer layers. Three formulations:

  reference   the original code: per block two in_proj and two out_proj (one per direction), the
              input and output of the reverse direction flipped as copies, the gate fused into
              mamba-ssm's scan, fused add + RMSNorm; PS runs the BiMamba on each strand with flips
              and concatenations around it.
  ours-now    our model as written: one in_proj and one out_proj per block shared by both directions
              (weight tie + linearity), but the reverse direction's in_proj output (2E channels) and
              scan output (E) flipped as copies, the gate and the direction sum as separate kernels;
              PS strands stacked along the batch (one call).
  ours-fused  the target: as ours-now, with a scan that reads the reverse direction backwards (no
              flips), applies the gate, reads z once for both directions and writes their sum.

Elementwise work is counted as if each listed kernel were one fused kernel; the real PyTorch code
splits some (norm, causal conv, dtype casts, layout transposes), which the profiler then shows as
time above these floors.

    python -m benchmarks.floor                                   # H100 SXM datasheet rates
    python -m benchmarks.floor --bandwidth 2.9e12 --matmul 6.6e14  # measured ones (gpu_throughput.py)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

# H100 SXM5 datasheet: HBM3 3.35 TB/s; dense bf16 tensor core 989 TFLOP/s; fp32 vector 67 TFLOP/s;
# MUFU.EX2: 16 per SM per clock (CUDA programming guide, compute capability 9.0) x 132 SMs x 1.98 GHz.
H100_BANDWIDTH = 3.35e12
H100_BF16_MATMUL = 989e12
H100_FP32_VECTOR = 67e12
H100_SFU = 16 * 132 * 1.98e9


@dataclass(frozen=True)
class Sizes:
    d: int = 256  # d_model
    n_layer: int = 16
    expand: int = 2
    d_state: int = 16
    d_conv: int = 4

    @property
    def inner(self) -> int:  # E
        return self.expand * self.d

    @property
    def rank(self) -> int:  # dt_rank "auto"
        return -(-self.d // 16)


@dataclass
class Kernel:
    """Per base of one layer (one strand): elements read and written, FLOPs, exponentials."""

    name: str
    read: float
    write: float
    matmul_flops: float = 0.0
    vector_flops: float = 0.0
    exps: float = 0.0

    def plus(self, other: Kernel) -> Kernel:
        """The sum of two kernels of the same name."""
        return Kernel(
            self.name,
            self.read + other.read,
            self.write + other.write,
            self.matmul_flops + other.matmul_flops,
            self.vector_flops + other.vector_flops,
            self.exps + other.exps,
        )


def _direction(s: Sizes, gate_in_scan: bool, z_reads: float) -> list[Kernel]:
    """The per-direction kernels between in_proj and out_proj: conv, x_proj, dt_proj, scan."""
    E, N, R, K = s.inner, s.d_state, s.rank, s.d_conv
    # scan: per channel softplus (exp + log), per state exp(delta A), update s = a s + b and y += s C
    scan = Kernel(
        "scan",
        read=3 * E + 2 * N + (z_reads if gate_in_scan else 0),  # u, delta, B, C (+ z)
        write=E,
        vector_flops=6 * E * N + 4 * E + (4 * E if gate_in_scan else 0),
        exps=E * N + 2 * E + (E if gate_in_scan else 0),
    )
    return [
        Kernel("conv", read=E, write=E, vector_flops=2 * K * E + 4 * E, exps=E),  # + silu
        Kernel("x_proj", read=E + 2 * N, write=R + 2 * N, matmul_flops=2 * E * (R + 2 * N)),  # + B, C layout
        Kernel("dt_proj", read=R, write=E, matmul_flops=2 * R * E),
        scan,
    ]


def reference_layer(s: Sizes) -> list[Kernel]:
    """One PH layer of the original code, per base."""
    d, E = s.d, s.inner
    per_direction = [
        Kernel("in_proj", read=d, write=2 * E, matmul_flops=2 * d * 2 * E),
        *_direction(s, gate_in_scan=True, z_reads=E),
        Kernel("out_proj", read=E, write=d, matmul_flops=2 * E * d),
    ]
    return [
        Kernel("norm", read=2 * d, write=2 * d, vector_flops=6 * d),  # fused add + RMSNorm
        Kernel("flips", read=2 * d, write=2 * d),  # reverse input, reverse output
        *per_direction,
        *per_direction,
        Kernel("combine", read=2 * d, write=d, vector_flops=d),
    ]


def ours_layer(s: Sizes, fused: bool) -> list[Kernel]:
    """One PH layer of our formulation, per base: one in_proj and one out_proj for both directions."""
    d, E = s.d, s.inner
    kernels = [
        Kernel("norm", read=2 * d, write=2 * d, vector_flops=6 * d),
        Kernel("in_proj", read=d, write=2 * E, matmul_flops=2 * d * 2 * E),
    ]
    if fused:
        # forward scan reads z; the reverse one reads z again (cached rows are not guaranteed) and
        # y_fwd, and writes gated y_fwd + y_rev
        kernels += _direction(s, gate_in_scan=True, z_reads=E)
        kernels += _direction(s, gate_in_scan=True, z_reads=2 * E)
    else:
        kernels.append(Kernel("flips", read=2 * E + E, write=2 * E + E))  # xz in, y_rev out
        kernels += _direction(s, gate_in_scan=False, z_reads=0) * 2
        kernels.append(
            Kernel("gate+sum", read=2 * (2 * E) + 2 * E, write=2 * E + E, vector_flops=10 * E, exps=2 * E)
        )
    kernels.append(Kernel("out_proj", read=E, write=d, matmul_flops=2 * E * d))
    return kernels


def ps_layer(s: Sizes, ph: list[Kernel], strand_copies: float) -> list[Kernel]:
    """PS: the PH layer on both strands (2 x per base) plus the strand flips/concatenations around it."""
    doubled = [kernel.plus(kernel) for kernel in ph]
    return [*doubled, Kernel("strand copies", read=strand_copies * s.d, write=strand_copies * s.d)]


def formulations(s: Sizes) -> dict[str, dict[str, list[Kernel]]]:
    """formulation -> variant -> kernels of one layer per base (one pass)."""
    reference = reference_layer(s)
    now, fused = ours_layer(s, fused=False), ours_layer(s, fused=True)
    # reference PS: flip of the RC half in and out, split and concatenation of the halves (~6 d-wide copies);
    # ours: flip of the RC half in and out, concatenation of the strands along the batch and back (~4)
    return {
        "reference": {"ph": reference, "ps": ps_layer(s, reference, 6)},
        "ours-now": {"ph": now, "ps": ps_layer(s, now, 4)},
        "ours-fused": {"ph": fused, "ps": ps_layer(s, fused, 4)},
    }


@dataclass(frozen=True)
class Rates:
    bandwidth: float  # bytes/s
    matmul: float  # FLOP/s of the matrix products in the activation dtype
    vector: float  # FLOP/s, fp32 FMA counted as 2
    sfu: float  # exponentials/s

    def seconds(self, kernel: Kernel, element_bytes: int) -> tuple[float, str]:
        """(floor seconds per base, what binds it) for one kernel."""
        bounds = {
            "memory": (kernel.read + kernel.write) * element_bytes / self.bandwidth,
            "matmul": kernel.matmul_flops / self.matmul,
            "vector": kernel.vector_flops / self.vector,
            "sfu": kernel.exps / self.sfu,
        }
        bound = max(bounds, key=bounds.get)
        return bounds[bound], bound


DATASHEET = Rates(H100_BANDWIDTH, H100_BF16_MATMUL, H100_FP32_VECTOR, H100_SFU)


def merged(kernels: list[Kernel]) -> list[Kernel]:
    """Kernels of the same name added together, in first-seen order."""
    out: dict[str, Kernel] = {}
    for kernel in kernels:
        out[kernel.name] = out[kernel.name].plus(kernel) if kernel.name in out else kernel
    return list(out.values())


def pass_seconds_per_base(kernels: list[Kernel], rates: Rates, element_bytes: int, n_layer: int) -> float:
    return n_layer * sum(rates.seconds(k, element_bytes)[0] for k in kernels)


def kernel_table(name: str, kernels: list[Kernel], rates: Rates, element_bytes: int, n_layer: int) -> str:
    lines = [
        f"\n### {name}: per base, per layer, {element_bytes}-byte activations\n",
        "| kernel | bytes | matmul FLOP | other FLOP | exp | floor ns (x n_layer) | bound |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kernel in merged(kernels):
        seconds, bound = rates.seconds(kernel, element_bytes)
        lines.append(
            f"| {kernel.name} | {(kernel.read + kernel.write) * element_bytes:,.0f} | {kernel.matmul_flops:,.0f} "
            f"| {kernel.vector_flops:,.0f} | {kernel.exps:,.0f} | {seconds * 1e9:.4f} ({seconds * n_layer * 1e9:.3f}) "
            f"| {bound} |"
        )
    total = pass_seconds_per_base(kernels, rates, element_bytes, n_layer)
    lines.append(f"\nfloor of one pass: {total * 1e9:.2f} ns per base = {1 / total / 1e6:.2f} M bases/s")
    return "\n".join(lines)


def summary_table(s: Sizes, rates: Rates, element_bytes: int) -> str:
    """Floor bases/s of one pass and of RC-conjoined output (PH: two passes) per formulation."""
    lines = [
        "| formulation | PH one pass | PH conjoined | PS one pass (= conjoined) | bytes/base/pass PH |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, variants in formulations(s).items():
        ph = pass_seconds_per_base(variants["ph"], rates, element_bytes, s.n_layer)
        ps = pass_seconds_per_base(variants["ps"], rates, element_bytes, s.n_layer)
        ph_bytes = s.n_layer * sum(k.read + k.write for k in variants["ph"]) * element_bytes
        lines.append(
            f"| {name} | {1 / ph / 1e6:.2f} M | {0.5 / ph / 1e6:.2f} M | {1 / ps / 1e6:.2f} M | {ph_bytes / 1e3:,.0f} kB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bandwidth", type=float, default=H100_BANDWIDTH, help="bytes/s (measured D2D copy)")
    parser.add_argument(
        "--matmul", type=float, default=H100_BF16_MATMUL, help="FLOP/s (measured bf16 matmul)"
    )
    parser.add_argument("--vector", type=float, default=H100_FP32_VECTOR, help="fp32 FLOP/s")
    parser.add_argument("--sfu", type=float, default=H100_SFU, help="exponentials/s")
    parser.add_argument("--bytes", type=int, default=2, help="bytes per activation element (2 bf16, 4 fp32)")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-layer", type=int, default=16)
    parser.add_argument("--kernels", action="store_true", help="also print the per-kernel tables")
    args = parser.parse_args()

    sizes = Sizes(d=args.d_model, n_layer=args.n_layer)
    rates = Rates(args.bandwidth, args.matmul, args.vector, args.sfu)
    print(
        f"floor at d_model {sizes.d}, {sizes.n_layer} layers (E {sizes.inner}, N {sizes.d_state}, "
        f"dt_rank {sizes.rank}), {args.bytes}-byte activations; bandwidth {rates.bandwidth / 1e12:.2f} TB/s, "
        f"matmul {rates.matmul / 1e12:.0f} TFLOP/s, vector {rates.vector / 1e12:.0f} TFLOP/s, "
        f"SFU {rates.sfu / 1e12:.2f} T exp/s\n"
    )
    print(summary_table(sizes, rates, args.bytes))
    if args.kernels:
        for name, variants in formulations(sizes).items():
            print(kernel_table(f"{name}, PH", variants["ph"], rates, args.bytes, sizes.n_layer))


if __name__ == "__main__":
    main()
