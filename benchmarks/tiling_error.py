"""How far tiled embeddings are from one full pass, for a few overlaps (the table in docs/commands/embed.md).

A region longer than --window is cut into overlapping tiles and each base keeps the value of the
tile in which it lies farthest from an edge (caduceus_cli.windows). This script embeds one random
sequence of --length bases in a single pass, then tiled at each overlap, and prints max and mean
absolute differences as a Markdown table. The error depends on how far a model's state carries
context, so run it with the model you use (--model; default the shipped one).

    python -m benchmarks.tiling_error --model ../shared/conformance/ph_d64_l3 --window 1024 --length 3072
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from caduceus_cli.commands.runtime import open_model
from caduceus_cli.windows import tile_region


def embed(model, ids: np.ndarray, rc: str) -> np.ndarray:
    with torch.inference_mode():
        device = next(model.parameters()).device
        return model.embed(torch.from_numpy(ids)[None].to(device), rc=rc)[0].float().cpu().numpy()


def tiled(model, ids: np.ndarray, window: int, overlap: int, rc: str) -> np.ndarray:
    out = np.empty((len(ids), model.config.d_model), dtype=np.float32)
    for tile in tile_region(len(ids), window, overlap):
        out[tile.dest] = embed(model, ids[tile.start : tile.end], rc)[tile.keep]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="checkpoint folder or hub id (default: the shipped model)"
    )
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--length", type=int, default=None, help="sequence length (default 3 x window)")
    parser.add_argument("--overlaps", default="0,1/16,1/8,1/4,1/2", help="fractions of the window, or bases")
    parser.add_argument("--rc", default="auto", choices=["auto", "none", "average"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = open_model(args.model, None, args.device, args.dtype)
    length = args.length or 3 * args.window
    ids = np.random.default_rng(args.seed).integers(7, 11, size=length)  # A, C, G, T
    started = time.perf_counter()
    full = embed(model, ids, args.rc)
    print(
        f"model {model.provenance['source']} ({model.variant}, d_model {model.config.d_model}, "
        f"{model.config.n_layer} layers), rc {args.rc}, window {args.window}, sequence {length} bases, "
        f"full pass {time.perf_counter() - started:.1f} s; mean |embedding| {np.abs(full).mean():.3g}\n"
    )
    print("| overlap (bases) | overlap / window | nearest tile edge (bases) | max abs diff | mean abs diff |")
    print("| --- | --- | --- | --- | --- |")
    for text in args.overlaps.split(","):
        overlap = int(args.window * eval_fraction(text)) if "/" in text or text == "0" else int(text)
        diff = np.abs(tiled(model, ids, args.window, overlap, args.rc) - full)
        print(
            f"| {overlap} | {overlap / args.window:.3g} | {overlap // 2} | {diff.max():.2e} | {diff.mean():.2e} |",
            flush=True,
        )


def eval_fraction(text: str) -> float:
    numerator, _, denominator = text.partition("/")
    return float(numerator) / float(denominator or 1)


if __name__ == "__main__":
    main()
