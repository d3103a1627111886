"""Model-only bases/s of our Caduceus implementation: one forward pass and the RC-conjoined rate.

Random weights with Mamba's own initialisation (weights/train.py), so the state decays as fast as in
a real model (the CPU scan's cost depends on it). Each row is the median of --repeats timed calls
after one warm-up call, no I/O. "one pass" is `model(ids)` (hidden states and logits of the forward
strand); "conjoined" is `model.embed(ids, rc="auto")`: PS one pass, PH the forward and the
reverse-complement pass as one batch, so its bases/s counts each base once.

    OMP_NUM_THREADS=2 python -m benchmarks.model_speed --device cpu --length 4096
    python -m benchmarks.model_speed --device cuda --length 131072 --batch 1 4      # on a GPU
    python -m benchmarks.model_speed --device cuda --sizes plantcad2-small --variants ps --length 8192 --batch 1 8

Prints a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from caduceus_cli.device import DTYPES, resolve_device
from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.model.mamba2 import Mamba2
from weights.train import TrainConfig, initialise, model_config

# PlantCAD2's ssm_cfg (d_state 64, expand 2) with Mamba2's defaults for what its config does not state
PLANTCAD2_SSM_CFG = {"layer": "Mamba2", "d_state": 64, "d_conv": 4, "expand": 2, "headdim": 64, "ngroups": 1,
                     "conv_bias": True, "bias": False}  # fmt: skip
PLANTCAD2_SMALL = (768, 24)  # d_model, n_layer of kuleshov-group/PlantCAD2-Small-l24-d0768
# name -> (d_model, n_layer); "published" is the size of the 131k hub checkpoints, "plantcad2-small" that of
# PlantCAD2-Small, built with its Mamba-2 mixers (MIXERS; every other size Mamba-1)
SIZES = {"small": (128, 4), "published": (256, 16), "plantcad2-small": PLANTCAD2_SMALL}
MIXERS = {"plantcad2-small": "Mamba2"}


def random_model(
    variant: str,
    d_model: int,
    n_layer: int,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    seed: int = 0,
    mixer: str = "Mamba1",
) -> CaduceusForMaskedLM:
    """A model in the published configuration (PH or PS) with Mamba's random initialisation; the same
    weights for the same seed (initialise leaves conv1d to PyTorch's default init, from the global RNG).
    With mixer "Mamba2", PlantCAD2's mixers (PLANTCAD2_SSM_CFG) with Mamba2's initialisation of A and dt;
    the vocabulary stays Caduceus' 16 ids, whose size costs nothing measurable."""
    torch.manual_seed(seed)
    config = model_config(TrainConfig(d_model=d_model, n_layer=n_layer, rcps=variant == "ps"))
    if mixer == "Mamba2":
        config.ssm_cfg = dict(PLANTCAD2_SSM_CFG)
    model = CaduceusForMaskedLM(config)
    generator = torch.Generator().manual_seed(seed)
    initialise(model, generator)
    if mixer == "Mamba2":
        _initialise_mamba2(model, generator)
    return model.to(device=device, dtype=DTYPES[dtype]).eval()


def _initialise_mamba2(model: CaduceusForMaskedLM, generator: torch.Generator) -> None:
    """Mamba2's init: A = U(1, 16) per head, dt log-uniform in [1e-3, 0.1] through the inverse softplus."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, Mamba2):
                module.A_log.copy_(torch.log(torch.empty_like(module.A_log).uniform_(1, 16, generator=generator)))
                u = torch.rand(module.dt_bias.shape, generator=generator)
                dt = torch.exp(u * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
                module.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))


def random_ids(batch: int, length: int, device: str | torch.device, seed: int = 0) -> torch.Tensor:
    """Uniform A/C/G/T token ids (7..10), (batch, length)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(7, 11, (batch, length), generator=generator).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(call: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of `call` over `repeats` runs, after `warmup` untimed runs."""
    with torch.inference_mode():
        for _ in range(warmup):
            call()
        times = []
        for _ in range(repeats):
            sync(device)
            started = time.perf_counter()
            call()
            sync(device)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_gib(call: Callable[[], object], device: torch.device) -> float | None:
    """Peak CUDA memory of one call, GiB (None on the CPU)."""
    if device.type != "cuda":
        return None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        call()
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**30


@dataclass
class Row:
    size: str
    variant: str
    dtype: str
    length: int
    batch: int
    one_pass: float  # bases/s of model(ids)
    conjoined: float  # bases/s of model.embed(ids, rc="auto"), each base counted once
    peak: float | None  # GiB of the conjoined call

    def markdown(self) -> str:
        peak = "" if self.peak is None else f"{self.peak:.2f}"
        return (
            f"| {self.size} | {self.variant.upper()} | {self.dtype} | {self.length:,} | {self.batch} "
            f"| {self.one_pass:,.0f} | {self.conjoined:,.0f} | {peak} |"
        )


HEADER = (
    "| size | variant | dtype | L | batch | one pass bases/s | conjoined bases/s | peak GiB (conjoined) |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def measure(
    model: CaduceusForMaskedLM, size: str, dtype: str, length: int, batch: int, repeats: int, warmup: int
) -> Row:
    device = next(model.parameters()).device
    ids = random_ids(batch, length, device)
    one_pass = median_seconds(lambda: model(ids), device, repeats, warmup)
    conjoined = median_seconds(lambda: model.embed(ids, rc="auto"), device, repeats, warmup)
    bases = batch * length
    peak = peak_gib(lambda: model.embed(ids, rc="auto"), device)
    return Row(size, model.variant, dtype, length, batch, bases / one_pass, bases / conjoined, peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--length", type=int, default=None, help="bases per window (default: 4,096 CPU, 131,072 CUDA)"
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--sizes", nargs="+", default=["small", "published"], choices=list(SIZES))
    parser.add_argument("--variants", nargs="+", default=["ph", "ps"], choices=["ph", "ps"])
    parser.add_argument(
        "--dtypes", nargs="+", default=None, help="default: float32 (CPU); float32 bfloat16 (CUDA)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed calls first (CUDA: kernel load, autotune)"
    )
    args = parser.parse_args()

    device = resolve_device(args.device)
    length = args.length or (131_072 if device.type == "cuda" else 4_096)
    dtypes = args.dtypes or (["float32", "bfloat16"] if device.type == "cuda" else ["float32"])
    card = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"model-only, random weights, {card}, torch {torch.__version__}, "
        f"median of {args.repeats} after {args.warmup} warm-up\n"
    )
    print(HEADER)
    for size in args.sizes:
        d_model, n_layer = SIZES[size]
        for variant in args.variants:
            for dtype in dtypes:
                model = random_model(variant, d_model, n_layer, device, dtype, mixer=MIXERS.get(size, "Mamba1"))
                for batch in args.batch:
                    name = f"{size} (d {d_model}, {n_layer} layers)"
                    row = measure(model, name, dtype, length, batch, args.repeats, args.warmup)
                    print(row.markdown(), flush=True)
                del model


if __name__ == "__main__":
    main()
