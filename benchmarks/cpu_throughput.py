"""The CPU engine against the machine's floor and against the reference path, in one run.

Every rate is measured twice in the same process, on the same inputs: with the compiled kernels
("compiled", the default path) and with `CADUCEUS_CPU_SCAN=reference` ("reference": the chunked
PyTorch scan and the PyTorch conv, which is the path before the compiled kernels; with its former
default CPU batch of a 2 GiB budget in the end-to-end rows). Conjoined bases/s counts each base
once, for the forward and reverse-complement passes together (PS: one pass over both strands).

Sections (`--sections`, default all):
  rates    the machine: our vectorised exp (the polynomial of cpu_kernels.py), torch.exp, fp32 matmul
           at the model's shapes, copy bandwidth; per thread count
  floor    per conjoined base: linear-layer FLOPs and scan state updates (one exp each) counted from
           the config, and the bases/s they allow at the measured matmul and exp rates
  scan     the gated scan alone: state updates/s
  model    model-only conjoined bases/s (`model.embed(ids)`), batch 1, random weights (published size)
           or the shipped model
  batch    model-only conjoined bases/s of the compiled path against the batch size (L = 1,024)
  e2e      the embed pipeline (what `caduceus embed` runs) in-process, FASTA in, HDF5 out, default
           window, overlap and batch
  variants the score-variants pipeline, masked LLR at its default window, the example SNVs
  train    weights/train.py's step (forward, backward, AdamW) on random windows, tokens/s
  memory   peak resident memory of `model.embed` on one window (and on the default CPU batch), over
           that of the same process on a 64-base window (model, libraries, compiled kernels loaded),
           each in a fresh process

    python -m benchmarks.cpu_throughput                         # everything, 1 and 2 threads
    python -m benchmarks.cpu_throughput --sections scan model --threads 2 --lengths 1024

Medians of --repeats timed calls after one warm-up call (the reference path at the published size:
one call, it takes seconds to minutes). Markdown tables on stdout.
"""

from __future__ import annotations

# ruff: noqa: E402 - the process settings of the command line come before torch is imported
from caduceus_cli.runtime import tune_process

tune_process()
# isort: split
import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from benchmarks.embed_throughput import end_to_end
from benchmarks.model_speed import PLANTCAD2_SMALL, random_ids, random_model
from benchmarks.score_variants import run as score_vcf_seconds
from caduceus_cli import load_model
from caduceus_cli.engine import Engine
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.model import compiled
from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.model.config import CaduceusConfig
from caduceus_cli.model.scan import selective_scan
from caduceus_cli.model.ssd import ssd
from caduceus_cli.scoring.settings import DEFAULT_FLANK, default_window
from caduceus_cli.windows import default_overlap
from weights.data import mask_for_mlm
from weights.train import TrainConfig, make_optimizer, masked_loss, model_config

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "weights" / "caduceus-ph-tair10"
EXAMPLE_FASTA = ROOT / "examples" / "example.fa"
EXAMPLE_VCF = ROOT / "examples" / "example.vcf"
PATHS = ("reference", "compiled")
_OLD_CPU_BUDGET = 2 << 30  # the former default CPU batch: a 2 GiB activation budget


@contextlib.contextmanager
def cpu_path(name: str) -> Iterator[None]:
    previous = compiled.use_cpu_scan(name)
    try:
        yield
    finally:
        compiled.use_cpu_scan(previous)


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)
    print()


# --- the models --------------------------------------------------------------------------------
@dataclass
class Subject:
    name: str
    model: CaduceusForMaskedLM
    window: int = 1024  # the e2e section's tile

    @property
    def exps_per_base(self) -> int:
        """Exponentials of the scan per conjoined base: two sequences (PH: forward and RC passes; PS: both
        strands in one pass) x layers x two directions x (Mamba-1: one per state update, d_inner x
        d_state; Mamba-2: one per head, its decay being a scalar per head)."""
        c = self.model.config
        per_direction = c.mixer.d_inner * c.mixer.d_state if c.mixer.kind == "Mamba1" else c.mixer.nheads
        return 2 * c.n_layer * 2 * per_direction

    @property
    def flops_per_base(self) -> int:
        """Linear-layer FLOPs per conjoined base (2 per multiply-add): every linear layer of a block
        (linear_shapes) and the LM head, for two sequences."""
        c = self.model.config
        per_layer = sum(2 * k * n for k, n in linear_shapes(c))
        return 2 * (c.n_layer * per_layer + 2 * c.d_model * c.padded_vocab_size)


def linear_shapes(config: CaduceusConfig) -> list[tuple[int, int]]:
    """(in, out) of each linear layer one block runs per sequence: in_proj once for both directions (tied),
    Mamba-1's x_proj and dt_proj per direction, one out_proj for the tied sum of both directions."""
    m, d = config.mixer, config.d_model
    if m.kind == "Mamba2":
        return [(d, m.in_proj_dim), (m.d_inner, d)]
    per_direction = [(m.d_inner, m.dt_rank + 2 * m.d_state), (m.dt_rank, m.d_inner)]
    return [(d, 2 * m.d_inner), *per_direction, *per_direction, (m.d_inner, d)]


def subjects(names: list[str]) -> list[Subject]:
    made = {
        "shipped": lambda: Subject("shipped", load_model(SHIPPED)),
        "published PH": lambda: Subject("published PH", random_model("ph", 256, 16)),
        "published PS": lambda: Subject("published PS", random_model("ps", 256, 16)),
        "PlantCAD2-Small": lambda: Subject(
            "PlantCAD2-Small", random_model("ps", *PLANTCAD2_SMALL, mixer="Mamba2"), window=8192
        ),
    }
    return [made[name]() for name in names]


# --- rates -------------------------------------------------------------------------------------
def exp_rate(count: int) -> float:
    """Our vectorised exp over 2^22 floats, split over `count` threads as the scan is: exps/s."""
    from numba import njit

    from caduceus_cli.model import cpu_kernels

    @njit(nogil=True, fastmath=True, error_model="numpy")
    def exps(x, out, first, last):
        x, out = x[first:last], out[first:last]  # indexed from 0: no wrap-around checks, so SIMD
        for i in range(x.shape[0]):
            out[i] = cpu_kernels.fast_exp(x[i])

    x = np.random.default_rng(0).uniform(-20, 0, 1 << 22).astype(np.float32)
    out = np.empty_like(x)
    size = len(x)
    with threads(count):
        items = [(i * size // count, (i + 1) * size // count) for i in range(count)]
        seconds = median_seconds(lambda: compiled._run_parallel(lambda _, it: exps(x, out, *it), items), 5)
    return size / seconds


def torch_exp_rate(count: int) -> float:
    x = torch.empty(1 << 22).uniform_(-20, 0)
    out = torch.empty_like(x)
    with threads(count):
        return x.numel() / median_seconds(lambda: torch.exp(x, out=out), 5)


def matmul_rate(count: int, model: CaduceusForMaskedLM) -> float:
    """fp32 FLOP/s of one block's linear layers (linear_shapes) on 2,048 tokens (two sequences of 1,024)."""
    shapes = linear_shapes(model.config)
    weights = [torch.randn(n, k) for k, n in shapes]
    inputs = [torch.randn(2048, k) for k, _ in shapes]
    flops = sum(2 * 2048 * k * n for k, n in shapes)
    with threads(count), torch.inference_mode():
        seconds = median_seconds(
            lambda: [torch.nn.functional.linear(x, w) for x, w in zip(inputs, weights, strict=True)], 9
        )
    return flops / seconds


def copy_bandwidth(count: int) -> float:
    """Bytes/s of a 256 MiB copy, read and write counted."""
    source = torch.empty(1 << 26)
    target = torch.empty_like(source)
    with threads(count):
        return 2 * source.numel() * 4 / median_seconds(lambda: target.copy_(source), 5)


@dataclass
class Rates:
    exp: float
    torch_exp: float
    matmul: float
    bandwidth: float


def measure_rates(counts: list[int], model: CaduceusForMaskedLM) -> dict[int, Rates]:
    rates = {
        n: Rates(exp_rate(n), torch_exp_rate(n), matmul_rate(n, model), copy_bandwidth(n)) for n in counts
    }
    table(
        ["threads", "our exp, G/s", "torch.exp, G/s", "fp32 matmul (model shapes), GFLOP/s", "copy, GB/s"],
        [
            [
                str(n),
                f"{r.exp / 1e9:.2f}",
                f"{r.torch_exp / 1e9:.2f}",
                f"{r.matmul / 1e9:.0f}",
                f"{r.bandwidth / 1e9:.1f}",
            ]
            for n, r in rates.items()
        ],
    )
    return rates


def floor_bases(subject: Subject, rates: Rates) -> float:
    """Conjoined bases/s if the linear layers ran at the matmul rate and the scan's exponentials at our
    exp rate, nothing else costing anything."""
    return 1 / (subject.flops_per_base / rates.matmul + subject.exps_per_base / rates.exp)


def print_floor(models: list[Subject], rates: dict[int, Rates]) -> None:
    table(
        ["model", "MFLOP / base", "scan exps / base", *(f"floor bases/s, {n} thr" for n in rates)],
        [
            [
                s.name,
                f"{s.flops_per_base / 1e6:.2f}",
                f"{s.exps_per_base:,}",
                *(f"{floor_bases(s, r):,.0f}" for r in rates.values()),
            ]
            for s in models
        ],
    )


# --- scan and model ----------------------------------------------------------------------------
def scan_call(subject: Subject) -> tuple[Callable[[], object], int]:
    """The first forward mixer's scan on 2 x 1,024 random positions, as the model calls it, and its state
    updates (d_inner x d_state per position)."""
    mixer = subject.model.caduceus.backbone.layers[0].mixer
    mamba = getattr(mixer, "submodule", mixer).mamba_fwd
    layout = subject.model.config.mixer
    g = torch.Generator().manual_seed(0)
    updates = 2 * 1024 * layout.d_inner * layout.d_state
    if layout.kind == "Mamba2":
        projected = torch.randn(2, 1024, layout.in_proj_dim, generator=g)  # z a view of it, as in the model
        xbc, dt = torch.randn(2, 1024, layout.conv_dim, generator=g), projected[..., -layout.nheads :]
        A, D, bias = -torch.exp(mamba.A_log.detach()), mamba.D.detach(), mamba.dt_bias.detach()
        return (lambda: ssd(xbc, dt, A, D, bias, projected[..., : layout.d_inner], layout)), updates
    u, dt, z = (torch.randn(2, 1024, layout.d_inner, generator=g) for _ in range(3))
    B, C = (torch.randn(2, 1024, layout.d_state, generator=g) for _ in range(2))
    args = (u, dt - 2, -torch.exp(mamba.A_log.detach()), B, C, mamba.D.detach(), mamba.dt_proj.bias.detach(), z)
    return (lambda: selective_scan(*args)), updates


def scan_rates(models: list[Subject], counts: list[int], repeats: int) -> None:
    rows = []
    for subject in models:
        call, updates = scan_call(subject)
        for n in counts:
            row = [subject.name, "2 x 1,024", str(n)]
            for path in PATHS:
                with cpu_path(path), threads(n), torch.inference_mode():
                    row.append(f"{updates / median_seconds(call, repeats) / 1e9:.3f}")
            rows.append(row)
    table(["model shapes", "batch x L", "threads", *(f"{p}, G updates/s" for p in PATHS)], rows)


def model_rates(models, counts, lengths, repeats, rates: dict[int, Rates]) -> None:
    rows = []
    for subject in models:
        for length in lengths:
            ids = random_ids(1, length, "cpu")
            for n in counts:
                row = [subject.name, f"{length:,}", str(n)]
                speeds = {}
                for path in PATHS:
                    slow = path == "reference" and subject.name != "shipped"
                    with cpu_path(path), threads(n), torch.inference_mode():
                        seconds = median_seconds(
                            lambda model=subject.model, ids=ids: model.embed(ids), 1 if slow else repeats
                        )
                    speeds[path] = length / seconds
                    row.append(f"{speeds[path]:,.0f}")
                floor = floor_bases(subject, rates[n]) if n in rates else float("nan")
                row += [
                    f"{speeds['compiled'] / speeds['reference']:.1f}x",
                    f"{floor:,.0f}",
                    f"{floor / speeds['compiled']:.2f}",
                ]
                rows.append(row)
    table(
        [
            "model",
            "L",
            "threads",
            "reference bases/s",
            "compiled bases/s",
            "speed-up",
            "floor bases/s",
            "floor / compiled",
        ],
        rows,
    )


def batch_rates(models: list[Subject], counts: list[int], repeats: int) -> None:
    rows = []
    batches = (1, 2, 4, 8, 16)
    for subject in models:
        for n in counts:
            row = [subject.name, str(n)]
            for batch in batches:
                ids = random_ids(batch, 1024, "cpu")
                with threads(n), torch.inference_mode():
                    seconds = median_seconds(lambda model=subject.model, ids=ids: model.embed(ids), repeats)
                row.append(f"{batch * 1024 / seconds:,.0f}")
            rows.append(row)
    table(["model", "threads", *(f"batch {b}" for b in batches)], rows)


# --- end to end --------------------------------------------------------------------------------
def old_cpu_batch(model: CaduceusForMaskedLM, length: int) -> int:
    """The former default CPU batch: windows of `length` fitting a 2 GiB activation budget."""
    per_window = length * model.config.mixer.d_inner * 64 * 2
    return max(1, _OLD_CPU_BUDGET // per_window)


def example_prefix(folder: Path, bases: int) -> Path:
    """The first `bases` of the example contig as a FASTA of its own."""
    with Fasta(EXAMPLE_FASTA) as reference:
        sequence = reference.fetch("Chr1", 0, bases)
    path = folder / f"chr1_{bases}.fa"
    path.write_text(">Chr1\n" + "\n".join(sequence[i : i + 60] for i in range(0, len(sequence), 60)) + "\n")
    return path


def e2e_rates(models: list[Subject], counts: list[int], folder: Path) -> None:
    """The embed pipeline (`embed_regions`, what `caduceus embed` runs, with its default window, overlap
    and rc; model loading excluded, opening the FASTA and writing the HDF5 included) on the start of
    the example contig: 100 kbp (compiled) or 20 kbp (reference) with the shipped model, 20 / 3 kbp
    at the published size, so each run takes seconds to a minute."""
    rows = []
    for subject in models:
        shipped = subject.name == "shipped"
        for n in counts:
            row = [subject.name, str(n)]
            speeds = {}
            for path in PATHS:
                bases = (
                    (100_000 if path == "compiled" else 20_000)
                    if shipped
                    else (20_000 if path == "compiled" else 3_000)
                )
                batch = old_cpu_batch(subject.model, 1024) if path == "reference" else None
                fasta = example_prefix(folder, bases)
                with cpu_path(path), threads(n):
                    engine = Engine(subject.model, batch_size=batch)
                    _, seconds = end_to_end(
                        subject.model, engine, fasta, folder / "out.h5", {}, subject.window,
                        default_overlap(subject.window), "auto",
                    )  # fmt: skip
                speeds[path] = bases / seconds
                row.append(f"{speeds[path]:,.0f} ({bases // 1000} kbp)")
            row.append(f"{speeds['compiled'] / speeds['reference']:.1f}x")
            rows.append(row)
    table(["model", "threads", "reference bases/s", "compiled bases/s", "speed-up"], rows)


def variant_rates(counts: list[int], folder: Path) -> None:
    """Masked LLR of the example SNVs (`score_vcf`, what `caduceus score-variants` runs) with the
    shipped model at its default window: all 300 with the compiled path, the first 30 with the
    reference."""
    lines = EXAMPLE_VCF.read_text().splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    records = [line for line in lines if not line.startswith("#")]
    model = load_model(SHIPPED)
    window = default_window(model.default_window)
    rows = []
    for n in counts:
        row = [str(n)]
        speeds = {}
        for path in PATHS:
            count = len(records) if path == "compiled" else 30
            vcf = folder / f"snvs{count}.vcf"
            vcf.write_text("".join(header + records[:count]))
            batch = old_cpu_batch(model, window) if path == "reference" else None
            options = SimpleNamespace(emb_flank=DEFAULT_FLANK, batch_size=batch)
            with cpu_path(path), threads(n):
                seconds = score_vcf_seconds(
                    vcf, EXAMPLE_FASTA, model, window, ["llr"], options, folder / "out.bcf"
                )
            speeds[path] = count / seconds
            row.append(f"{speeds[path]:,.1f} ({count} SNVs)")
        row.append(f"{speeds['compiled'] / speeds['reference']:.1f}x")
        rows.append(row)
    table([f"threads (window {window})", "reference variants/s", "compiled variants/s", "speed-up"], rows)


def train_rates(counts: list[int], steps: int) -> None:
    """Tokens/s of training steps at the shipped model's size (weights/train.py's loss and AdamW),
    batch 8 x 1,024, random A/C/G/T windows masked as in training."""
    shipped = load_model(SHIPPED).config
    cfg = TrainConfig(d_model=shipped.d_model, n_layer=shipped.n_layer, batch_size=8, seq_len=1024)
    rng = np.random.default_rng(0)
    inputs, labels = (torch.from_numpy(a) for a in mask_for_mlm(rng.integers(7, 11, (8, 1024)), rng))
    rows = []
    for n in counts:
        row = [f"d {cfg.d_model}, {cfg.n_layer} layers", "8 x 1,024", str(n)]
        speeds = {}
        for path in PATHS:
            torch.manual_seed(0)
            model = CaduceusForMaskedLM(model_config(cfg)).train()
            optimizer = make_optimizer(model, cfg)

            def step(model=model, optimizer=optimizer):
                loss = masked_loss(model(inputs).logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            with cpu_path(path), threads(n):
                speeds[path] = inputs.numel() / median_seconds(step, steps)
            row.append(f"{speeds[path]:,.0f}")
        row.append(f"{speeds['compiled'] / speeds['reference']:.1f}x")
        rows.append(row)
    table(["model", "batch", "threads", "reference tokens/s", "compiled tokens/s", "speed-up"], rows)


_MEMORY_PROBE = """
import sys, torch
from benchmarks.cpu_throughput import subjects
from caduceus_cli.engine import default_batch_size
subject = subjects([sys.argv[1]])[0]
length, run = int(sys.argv[2]), sys.argv[3]
batch = default_batch_size(subject.model, length) if run == "batch" else 1
ids = torch.randint(7, 11, (batch, length if run != "tiny" else 64))
with torch.inference_mode():
    subject.model.embed(ids)
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(batch, int(peak.split()[1]) * 1024)
"""


def peak_rss(argv: list[str]) -> tuple[int, str]:
    """Peak resident bytes of a fresh process running the probe, and its batch. VmHWM (Linux), not the
    child's rusage, which also counts the parent's memory at the fork."""
    output = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, *argv], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    return int(output[1]), output[0]


def memory(models: list[Subject], lengths: list[int]) -> None:
    rows = []
    for subject in models:
        for length in lengths:
            loaded, _ = peak_rss([subject.name, str(length), "tiny"])
            one, _ = peak_rss([subject.name, str(length), "one"])
            batch, windows = peak_rss([subject.name, str(length), "batch"])
            rows.append(
                [
                    subject.name,
                    f"{length:,}",
                    f"{(one - loaded) / 2**20:,.0f}",
                    windows,
                    f"{(batch - loaded) / 2**20 / int(windows):,.0f}",
                ]
            )
    table(["model", "L", "MiB for one window", "default CPU batch", "MiB per window in it"], rows)


SECTIONS = ("rates", "floor", "scan", "model", "batch", "e2e", "variants", "train", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--lengths", nargs="+", type=int, default=[1024, 8192])
    parser.add_argument("--models", nargs="+", default=["shipped", "published PH", "published PS"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(
        f"CPU: {os.cpu_count()} CPUs, torch {torch.__version__}, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.1f} at start\n"
    )
    models = subjects(args.models)
    sections = set(args.sections)
    rates = {}
    if sections & {"rates", "floor", "model"}:
        rates = measure_rates(args.threads, models[-1].model)
    if "floor" in sections:
        print_floor(models, rates)
    if "scan" in sections:
        scan_rates(models, args.threads, args.repeats)
    if "model" in sections:
        model_rates(models, args.threads, args.lengths, args.repeats, rates)
    if "batch" in sections:
        batch_rates(models, args.threads, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        if "e2e" in sections:
            e2e_rates(models, args.threads, Path(folder))
        if "variants" in sections:
            variant_rates(args.threads, Path(folder))
    if "train" in sections:
        train_rates(args.threads, args.repeats)
    if "memory" in sections:
        memory(models, args.lengths)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
