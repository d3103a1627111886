"""Issue 6's GPU table in one run: our path next to a plain mamba-ssm path, model-only and end to end.

Sections (all by default; pick with --sections):

  rates    the card's device-to-device copy bandwidth and bf16 matrix-product rate (the floor's inputs)
  floor    benchmarks/floor.py's floor with those measured rates
  model    our model, model-only: one-pass and RC-conjoined bases/s, peak memory per window, per
           variant, dtype and batch size (benchmarks/model_speed.py's measurement)
  plain    the same model built from mamba-ssm's own `Mamba` modules with our weights copied in, two
           directions with flipped copies like the original implementation: one-pass bases/s and
           its max abs difference from our path (needs mamba-ssm; causal-conv1d for its fast path)
  e2e      the embed pipeline (`embed_regions`) on a generated FASTA (--precision float16), per-base and --bin 128, next
           to the engine's model-only rate (benchmarks/embed_throughput.py's runs)
  profile  torch.profiler kernel time of one forward pass, top kernels and groups (scan, matmul, ...)
  error    bfloat16 vs float32 max abs error of conjoined embeddings and logits at --length
  cpu      one float32 pass on this device against the CPU float32 path at --cpu-length (slow)

Without CUDA every section runs at toy sizes on the CPU (or says why it is skipped), so the script is
known to work before it meets the GPU:

    python -m benchmarks.gpu_throughput --dry-run
    python -m benchmarks.gpu_throughput                 # on the GPU: published size, L 131,072
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from benchmarks import embed_throughput, floor
from benchmarks.model_speed import HEADER, SIZES, measure, median_seconds, random_ids, random_model, sync
from caduceus_cli.commands.runtime import open_model
from caduceus_cli.device import DTYPES, resolve_device
from caduceus_cli.engine import Engine, default_batch_size
from caduceus_cli.model.caduceus import CaduceusForMaskedLM, flip_lc
from caduceus_cli.model.load import save_checkpoint
from caduceus_cli.model.mamba1 import Mamba as OurMamba
from caduceus_cli.windows import default_overlap

SECTIONS = ("rates", "floor", "model", "plain", "e2e", "profile", "error", "cpu")
TOY = {"size": (32, 2), "length": 256, "batches": [1, 2], "e2e_windows": 4}


# --- the card's rates ----------------------------------------------------------------------------
def copy_bandwidth(device: torch.device, gib: float = 2.0) -> float:
    """Bytes/s of a large device-to-device copy, counting the read and the write."""
    source = torch.empty(int(gib * 2**30), dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    seconds = median_seconds(lambda: target.copy_(source), device, repeats=5)
    return 2 * source.numel() / seconds


def matmul_rate(device: torch.device, n: int = 8192, dtype: torch.dtype = torch.bfloat16) -> float:
    """FLOP/s of an n x n x n matrix product."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / median_seconds(lambda: a @ b, device, repeats=5)


# --- the plain path: mamba-ssm's own modules, as the original implementation calls them -----------
class PlainBiMamba(nn.Module):
    """out = M_fwd(h) + flipL(M_rev(flipL(h))), each direction one mamba-ssm `Mamba` call (its fused
    path with causal-conv1d installed), the reverse direction sharing in_proj/out_proj modules."""

    def __init__(self, ours, make_mamba: Callable[[], nn.Module]):
        super().__init__()
        self.fwd, self.rev = make_mamba(), make_mamba()
        self.fwd.load_state_dict(ours.mamba_fwd.state_dict())
        missing = self.rev.load_state_dict(ours.mamba_rev.state_dict(), strict=False).missing_keys
        assert all(key.startswith(("in_proj", "out_proj")) for key in missing), missing
        self.rev.in_proj, self.rev.out_proj = self.fwd.in_proj, self.fwd.out_proj

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fwd(h) + self.rev(h.flip(1)).flip(1)


class PlainCaduceus(nn.Module):
    """Our model's weights run through mamba-ssm's modules and Triton RMSNorm, with the flips and
    per-strand calls of the original code (PS: the BiMamba once per strand). Returns logits."""

    def __init__(self, ours: CaduceusForMaskedLM, stand_in: bool = False):
        """`stand_in`: our own Mamba and RMSNorm in place of mamba-ssm's, to check this class's flips and
        strand handling where mamba-ssm cannot run (the CPU)."""
        super().__init__()
        config = ours.config
        if not (config.rms_norm and config.bidirectional and config.bidirectional_strategy == "add"):
            raise ValueError("the plain path covers the published configuration only (RMSNorm, add)")
        parameter = next(ours.parameters())
        kwargs = {"device": parameter.device, "dtype": parameter.dtype}
        if stand_in:
            rms_norm_fn = _stand_in_rms_norm

            def make_mamba() -> nn.Module:
                return _StandInMamba(config).to(**kwargs)

        else:
            from mamba_ssm.modules.mamba_simple import Mamba
            from mamba_ssm.ops.triton.layer_norm import rms_norm_fn

            def make_mamba() -> nn.Module:
                return Mamba(
                    d_model=config.d_model,
                    d_state=config.mixer.d_state,
                    d_conv=config.mixer.d_conv,
                    expand=config.ssm_cfg.get("expand", 2),
                    dt_rank=config.mixer.dt_rank,
                    conv_bias=config.mixer.conv_bias,
                    bias=config.mixer.bias,
                    use_fast_path=True,
                    **kwargs,
                )

        self.ours, self.config, self.rms_norm_fn = ours, config, rms_norm_fn
        backbone = ours.caduceus.backbone
        self.mixers = nn.ModuleList(
            PlainBiMamba(layer.mixer.submodule if config.rcps else layer.mixer, make_mamba)
            for layer in backbone.layers
        )

    def norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self.rms_norm_fn(x, weight, None, eps=self.config.norm_epsilon)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        backbone, d = self.ours.caduceus.backbone, self.config.d_model
        h, res = backbone.embeddings.word_embeddings(ids), None
        for layer, mixer in zip(backbone.layers, self.mixers, strict=True):
            summed = h if res is None else h + res
            w = layer.norm.weight
            if not self.config.rcps:
                res, h = summed, mixer(self.norm(summed, w))
                continue
            first, second = summed[..., :d], summed[..., d:]
            if self.config.fused_add_norm:  # the published path's half swap (see caduceus.py)
                first, second = second, first
            res = torch.cat([first, second], dim=-1)
            fwd = mixer(self.norm(first, w))
            rc = flip_lc(mixer(self.norm(flip_lc(second), w)))
            h = torch.cat([fwd, rc], dim=-1)
        summed = h if res is None else h + res
        w = backbone.norm_f.weight
        if self.config.rcps:
            hidden = torch.cat(
                [self.norm(summed[..., :d], w), flip_lc(self.norm(flip_lc(summed[..., d:]), w))], -1
            )
        else:
            hidden = self.norm(summed, w)
        return self.ours.head(hidden)


class _StandInMamba(OurMamba):
    """Our one-direction Mamba with mamba-ssm's `Mamba.forward` contract: (B, L, d) -> (B, L, d)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.gated_ssm(self.in_proj(h)))


def _stand_in_rms_norm(x: torch.Tensor, weight: torch.Tensor, bias: None, eps: float) -> torch.Tensor:
    compute = torch.promote_types(x.dtype, torch.float32)
    y = x.to(compute)
    return (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps) * weight.to(compute)).to(x.dtype)


def plain_available() -> str | None:
    """None if the plain path can run here, else why not."""
    try:
        import mamba_ssm.modules.mamba_simple  # noqa: F401
    except ImportError as err:
        return f"mamba-ssm not importable ({err})"
    if not torch.cuda.is_available():
        return "no CUDA"
    return None


def causal_conv1d_version() -> str:
    try:
        import causal_conv1d
    except ImportError:
        return "not installed (mamba-ssm's slow path: nn.Conv1d, no fused inner function)"
    return getattr(causal_conv1d, "__version__", "installed")


# --- profiling ---------------------------------------------------------------------------------------
KERNEL_GROUPS = (  # first match wins; names of CUDA kernels, or of aten ops when profiling the CPU
    ("scan", ("selective_scan", "cumsum")),
    ("matmul", ("gemm", "xmma", "cutlass", "matmul", "aten::mm", "aten::bmm", "aten::addmm", "linear")),
    ("conv", ("conv",)),
    ("norm", ("layer_norm", "rms", "_layer_norm", "reduce")),
    ("flip", ("flip",)),
    ("cat", ("cat",)),
    ("copy", ("copy", "contiguous", "to_copy")),
)


def kernel_group(name: str) -> str:
    lowered = name.lower()
    for group, needles in KERNEL_GROUPS:
        if any(needle in lowered for needle in needles):
            return group
    return "elementwise, other"


def kernel_times(call: Callable[[], object], device: torch.device) -> dict[str, float]:
    """Self time per kernel (CUDA) or per aten op (CPU) of one call, seconds."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.inference_mode():
        call()  # warm-up outside the trace
        sync(device)
        with profile(activities=activities) as trace:
            call()
            sync(device)
    wanted = DeviceType.CUDA if device.type == "cuda" else DeviceType.CPU
    times: dict[str, float] = {}
    for event in trace.key_averages():
        if event.device_type != wanted:
            continue
        micros = (
            getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)
            if wanted == DeviceType.CUDA
            else event.self_cpu_time_total
        )
        if micros:
            times[event.key] = times.get(event.key, 0.0) + micros / 1e6
    return times


def profile_tables(
    model: CaduceusForMaskedLM, ids: torch.Tensor, rates: floor.Rates, element_bytes: int
) -> None:
    device = ids.device
    times = kernel_times(lambda: model(ids), device)
    total = sum(times.values())
    bases = ids.numel()
    print(
        f"\n#### {model.variant.upper()} {next(model.parameters()).dtype}, batch {ids.shape[0]}, L {ids.shape[1]:,}: "
        f"{total * 1e3:.1f} ms of {'kernel' if device.type == 'cuda' else 'op'} time, one pass\n"
    )
    print("| kernel | ms | share |\n| --- | --- | --- |")
    for name, seconds in sorted(times.items(), key=lambda item: -item[1])[:15]:
        print(f"| `{name[:90]}` | {seconds * 1e3:.2f} | {seconds / total:.1%} |")
    groups: dict[str, float] = {}
    for name, seconds in times.items():
        groups[kernel_group(name)] = groups.get(kernel_group(name), 0.0) + seconds
    sizes = floor.Sizes(d=model.config.d_model, n_layer=model.config.n_layer)
    kernels = floor.merged(floor.formulations(sizes)["ours-now"][model.variant])
    floors = {k.name: rates.seconds(k, element_bytes)[0] * sizes.n_layer * bases for k in kernels}
    floor_of_group = {
        "scan": floors["scan"],
        "matmul": sum(floors[name] for name in ("in_proj", "x_proj", "dt_proj", "out_proj")),
    }
    print("\n| group | ms | share | floor ms (ours-now) | over floor |\n| --- | --- | --- | --- | --- |")
    for group, seconds in sorted(groups.items(), key=lambda item: -item[1]):
        limit = floor_of_group.get(group)
        extra = f"| {limit * 1e3:.2f} | {seconds / limit:.1f}x |" if limit else "| | |"
        print(f"| {group} | {seconds * 1e3:.2f} | {seconds / total:.1%} {extra}")


# --- sections ------------------------------------------------------------------------------------------
def section_rates(device: torch.device) -> floor.Rates:
    if device.type != "cuda":
        print("\n## Card rates: no CUDA; the floor below uses the H100 SXM datasheet values\n")
        return floor.DATASHEET
    bandwidth, rate = copy_bandwidth(device), matmul_rate(device)
    print("\n## Card rates (measured)\n")
    print("| what | measured | datasheet (H100 SXM) |\n| --- | --- | --- |")
    print(f"| device-to-device copy | {bandwidth / 1e12:.2f} TB/s | {floor.H100_BANDWIDTH / 1e12:.2f} TB/s |")
    print(f"| bf16 matmul 8192^3 | {rate / 1e12:.0f} TFLOP/s | {floor.H100_BF16_MATMUL / 1e12:.0f} TFLOP/s |")
    return floor.Rates(bandwidth, rate, floor.H100_FP32_VECTOR, floor.H100_SFU)


def section_floor(rates: floor.Rates) -> None:
    print("\n## Floor (benchmarks/floor.py, 2-byte activations, published size)\n")
    print(floor.summary_table(floor.Sizes(), rates, element_bytes=2))


def section_model(args, device: torch.device) -> None:
    print(f"\n## Our path, model-only (L {args.length:,}, median of {args.repeats})\n")
    print(HEADER)
    d_model, n_layer = args.size
    notes = []
    for variant in args.variants:
        for dtype in args.dtypes:
            model = random_model(variant, d_model, n_layer, device, dtype)
            notes.append(
                f"{variant.upper()} {dtype}: engine's automatic batch size {default_batch_size(model, args.length)}"
            )
            for batch in args.batches:
                try:
                    row = measure(
                        model, f"d {d_model}, {n_layer} layers", dtype, args.length, batch, args.repeats, 1
                    )
                except torch.cuda.OutOfMemoryError:
                    empty_cache(device)
                    print(
                        f"| d {d_model} | {variant.upper()} | {dtype} | {args.length:,} | {batch} | OOM | | |"
                    )
                    continue
                print(row.markdown(), flush=True)
                if row.peak is not None:
                    notes.append(
                        f"{variant.upper()} {dtype} batch {batch}: {engine_constant(model, row, batch)}"
                    )
            del model
            empty_cache(device)
    print("\n" + "\n".join(f"- {note}" for note in notes))


def engine_constant(model: CaduceusForMaskedLM, row, batch: int) -> str:
    """The measured peak per window in the units of engine._BYTES_PER_TOKEN_PER_CHANNEL (bytes per
    token per d_inner channel, scaled to float32 elements, per strand pass), to recalibrate it."""
    element = max(next(model.parameters()).element_size(), 4)
    per_window = row.peak * 2**30 / batch
    constant = per_window / (row.length * model.config.mixer.d_inner * model.strand_passes("auto")) * 4 / element
    return f"peak {per_window / 2**30:.2f} GiB per window = {constant:.1f} bytes per token per channel"


def section_plain(args, device: torch.device) -> None:
    print(f"\n## Plain path from mamba-ssm modules vs ours, one pass (L {args.length:,})\n")
    why = plain_available()
    if why:
        print(
            f"mamba-ssm path unavailable ({why}): our own Mamba stands in, which checks this path's flips "
            "and strand handling (max abs diff) but times nothing of interest\n"
        )
    else:
        print(f"causal-conv1d: {causal_conv1d_version()}\n")
    print("| variant | dtype | batch | plain bases/s | ours bases/s | ours speed-up | max abs diff logits |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    d_model, n_layer = args.size
    for variant in args.variants:
        for dtype in args.dtypes:
            model = random_model(variant, d_model, n_layer, device, dtype)
            plain = PlainCaduceus(model, stand_in=why is not None).eval()
            for batch in args.batches:
                print(plain_row(model, plain, batch, args), flush=True)
            del model, plain
            empty_cache(device)


def plain_row(model: CaduceusForMaskedLM, plain: PlainCaduceus, batch: int, args) -> str:
    """One table row: both paths timed on the same ids, and how far apart their logits are."""
    device = next(model.parameters()).device
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    ids = random_ids(batch, args.length, device)
    try:
        plain_s = median_seconds(lambda: plain(ids), device, args.repeats)
        ours_s = median_seconds(lambda: model(ids), device, args.repeats)
        with torch.inference_mode():
            diff = (plain(ids[:1]) - model(ids[:1]).logits).abs().max().item()
    except torch.cuda.OutOfMemoryError:
        empty_cache(device)
        return f"| {model.variant.upper()} | {dtype} | {batch} | OOM | | | |"
    bases = ids.numel()
    return (
        f"| {model.variant.upper()} | {dtype} | {batch} | {bases / plain_s:,.0f} | {bases / ours_s:,.0f} "
        f"| {plain_s / ours_s:.2f} | {diff:.3g} |"
    )


def section_e2e(args, device: torch.device) -> None:
    """`caduceus embed` per-base and --bin 128 vs the engine's model-only rate, per variant and dtype."""
    window = args.length
    overlap = default_overlap(window)
    contig = window + (window - overlap) * max(0, args.e2e_windows // 2 - 1)
    lengths = [contig, contig]
    print(
        f"\n## End to end: caduceus embed --precision float16, {sum(lengths):,} bases in 2 contigs, "
        f"window {window:,}, overlap {overlap:,} (median of {args.repeats})\n"
    )
    print("| variant | dtype | batch | model-only bases/s | per-base bases/s | --bin 128 bases/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    d_model, n_layer = args.size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fasta = folder / "genome.fa"
        embed_throughput.write_fasta(fasta, len(lengths), contig, seed=1)
        for variant in args.variants:
            checkpoint = folder / variant
            save_checkpoint(random_model(variant, d_model, n_layer), checkpoint, max_length=window)
            for dtype in args.dtypes:
                model = open_model(str(checkpoint), None, str(device), dtype)
                engine = Engine(model)
                embed_throughput.model_only(model, engine, [window], window, overlap, "auto")  # warm-up
                model_s = [
                    embed_throughput.model_only(model, engine, lengths, window, overlap, "auto")[0]
                    for _ in range(args.repeats)
                ]
                batch = engine.batch_size or default_batch_size(model, window)
                rates = [sum(lengths) / statistics.median(model_s)]
                for layout in ({"precision": "float16"}, {"precision": "float16", "bin": 128}):
                    seconds = [
                        embed_throughput.end_to_end(
                            model, engine, fasta, folder / "out.h5", layout, window, overlap, "auto"
                        )[0]
                        for _ in range(args.repeats)
                    ]
                    rates.append(sum(lengths) / statistics.median(seconds))
                del model, engine
                empty_cache(device)
                print(
                    f"| {variant.upper()} | {dtype} | {batch} | "
                    + " | ".join(f"{r:,.0f}" for r in rates)
                    + " |"
                )


def section_profile(args, device: torch.device, rates: floor.Rates) -> None:
    batch = args.profile_batch
    print(f"\n## Kernel time of one forward pass (torch.profiler, batch {batch}, L {args.length:,})")
    d_model, n_layer = args.size
    dtype = args.dtypes[-1]
    for variant in args.variants:
        model = random_model(variant, d_model, n_layer, device, dtype)
        profile_tables(model, random_ids(batch, args.length, device), rates, DTYPES[dtype].itemsize)
        del model
        empty_cache(device)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def section_error(args, device: torch.device) -> None:
    d_model, n_layer = args.size
    print(
        f"\n## bfloat16 vs float32 at d {d_model}, {n_layer} layers, random weights, batch 1, L {args.length:,}\n"
    )
    print(
        "| variant | max abs err, conjoined embedding (max abs value) | max abs err, conjoined logits (max) |"
    )
    print("| --- | --- | --- |")
    ids = random_ids(1, args.length, device)
    for variant in args.variants:
        with torch.inference_mode():
            full = random_model(variant, d_model, n_layer, device, "float32")
            emb, logits = full.embed(ids), full.logits_conjoined(ids)
            del full
            half = random_model(variant, d_model, n_layer, device, "bfloat16")
            emb_half, logits_half = half.embed(ids), half.logits_conjoined(ids)
            del half
        print(
            f"| {variant.upper()} | {max_abs(emb, emb_half):.3g} ({emb.abs().max():.3g}) "
            f"| {max_abs(logits, logits_half):.3g} ({logits.abs().max():.3g}) |",
            flush=True,
        )
        empty_cache(device)


def section_cpu(args, device: torch.device) -> None:
    """One forward pass on this device in float32 against the CPU float32 path (slow: keep L short)."""
    d_model, n_layer = args.size
    length = args.cpu_length
    print(
        f"\n## {device.type} float32 vs CPU float32, one pass, d {d_model}, {n_layer} layers, L {length:,}\n"
    )
    print("| variant | max abs err, hidden (max abs value) | max abs err, logits (max) | CPU bases/s |")
    print("| --- | --- | --- | --- |")
    ids = random_ids(1, length, "cpu")
    for variant in args.variants:
        with torch.inference_mode():
            out = random_model(variant, d_model, n_layer, device, "float32")(ids.to(device))
            started = time.perf_counter()
            want = random_model(variant, d_model, n_layer, "cpu", "float32")(ids)
            cpu_rate = length / (time.perf_counter() - started)
        print(
            f"| {variant.upper()} | {max_abs(out.hidden.cpu(), want.hidden):.3g} ({want.hidden.abs().max():.3g}) "
            f"| {max_abs(out.logits.cpu(), want.logits):.3g} ({want.logits.abs().max():.3g}) | {cpu_rate:,.0f} |",
            flush=True,
        )
        empty_cache(device)


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dry-run", action="store_true", help="toy sizes, to check that every section runs")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    # Mamba-1 sizes: the plain path and the floor are built from mamba-ssm's Mamba-1 modules
    parser.add_argument("--size", choices=["small", "published"], default="published")
    parser.add_argument("--length", type=int, default=131_072)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--variants", nargs="+", default=["ph", "ps"], choices=["ph", "ps"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--e2e-windows", type=int, default=16, help="genome size of the end-to-end runs, in windows"
    )
    parser.add_argument("--profile-batch", type=int, default=4)
    parser.add_argument("--cpu-length", type=int, default=4096, help="L of the comparison with the CPU path")
    parser.add_argument("--threads", type=int, default=4, help="CPU threads of the end-to-end runs")
    args = parser.parse_args()
    args.size = SIZES[args.size]
    if args.dry_run or not torch.cuda.is_available():
        args.size, args.length, args.batches = TOY["size"], TOY["length"], TOY["batches"]
        args.e2e_windows, args.repeats, args.profile_batch = TOY["e2e_windows"], 1, 1
        args.cpu_length = TOY["length"]
    return args


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (toy sizes: a dry run)"
    print(
        f"# GPU throughput: {card}, torch {torch.__version__}, "
        f"d_model {args.size[0]}, {args.size[1]} layers, L {args.length:,}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    rates = section_rates(device) if "rates" in args.sections else floor.DATASHEET
    if "floor" in args.sections:
        section_floor(rates)
    if "model" in args.sections:
        section_model(args, device)
    if "plain" in args.sections:
        section_plain(args, device)
    if "error" in args.sections:
        section_error(args, device)
    if "profile" in args.sections:
        section_profile(args, device, rates)
    if "e2e" in args.sections:
        section_e2e(args, device)
    if "cpu" in args.sections:  # last: the CPU path is slow at the published size
        section_cpu(args, device)


if __name__ == "__main__":
    main()
