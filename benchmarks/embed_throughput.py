"""End-to-end `caduceus embed`, `track` and `ism` rates next to the model-only rate of the same model.

Writes a random FASTA, then for each output configuration (per-base float16, `--bin 128`, ...)
runs the embed pipeline (`embed_regions`, what the command runs) in this process, and separately
streams the same windows through the engine with no FASTA reading and no HDF5 writing ("model
only"). In the same rounds it runs the track pipeline (`track_regions`, llr-min into a bigWig) over the
same FASTA and the ISM pipeline (`saturation_mutagenesis`) over the first --ism-bases (unmasked) and
--ism-masked-bases (masked) of it. Each figure is the median of --repeats runs. A last table times the HDF5 codecs of
`--compression` on real model output (write MB/s on one core, and size ratio). Markdown tables go to stdout.

    python -m benchmarks.embed_throughput --model ../shared/conformance/ps_d64_l4 --window 256 --windows 8
    python -m benchmarks.embed_throughput --device cuda --window 131072 --windows 64      # on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from caduceus_cli.commands.runtime import open_model
from caduceus_cli.engine import Engine, Window
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.hdf5.layout import COMPRESSIONS, Layout
from caduceus_cli.io.hdf5.writer import EmbeddingFile
from caduceus_cli.io.regions import Region, all_contigs
from caduceus_cli.io.tracks import track_writer
from caduceus_cli.pipelines.embed import embed_regions
from caduceus_cli.pipelines.ism import saturation_mutagenesis
from caduceus_cli.pipelines.track import genome_order, track_regions
from caduceus_cli.windows import default_overlap, tile_region

# The embed command's output options, as the Layout they make.
CONFIGS = {
    "per-base": {},
    "per-base, --bin 128": {"bin": 128},
    "--bin 128 --no-per-base": {"bin": 128, "per_base": False},
}


def write_fasta(path: Path, contigs: int, length: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w") as handle:
        for index in range(contigs):
            seq = np.array(list("ACGT"))[rng.integers(0, 4, size=length)]
            handle.write(f">chr{index + 1}\n")
            for start in range(0, length, 80):
                handle.write("".join(seq[start : start + 80]) + "\n")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only(model, engine: Engine, lengths: list[int], window: int, overlap: int, rc: str):
    """Seconds to stream the embed command's windows (random ids, no I/O) through the engine, and the rows."""
    rng = np.random.default_rng(0)
    windows = [
        Window(ids=rng.integers(7, 11, size=tile.end - tile.start), key=None, rows=tile.keep)
        for n in lengths
        for tile in tile_region(n, window, overlap)
    ]
    device = next(model.parameters()).device
    sync(device)
    started = time.perf_counter()
    outputs = [rows for _, rows in engine.map(iter(windows), "embed", rc)]
    sync(device)
    return time.perf_counter() - started, np.concatenate(outputs)


def synthetic_embeddings(n: int, d: int) -> np.ndarray:
    """Embedding-like values: a slowly varying signal per channel along the sequence plus per-base noise."""
    rng = np.random.default_rng(0)
    drift = np.cumsum(rng.normal(size=(n, d)).astype(np.float32) * 0.05, axis=0)
    return np.tanh(drift - drift.mean(axis=0)) + 0.3 * rng.normal(size=(n, d)).astype(np.float32)


def end_to_end(model, engine: Engine, fasta: Path, out: Path, layout: dict, window: int, overlap: int, rc: str):
    """(pipeline seconds, wall seconds with opening the FASTA and creating the file) of one `embed_regions`."""
    started = time.perf_counter()
    with Fasta(fasta) as reference:
        regions = all_contigs(reference)
        output = EmbeddingFile.create(out, regions, Layout(d=model.config.d_model, **layout), {}, {})
        stats = embed_regions(engine, reference, regions, output, window=window, overlap=overlap, rc=rc)
        output.finish()
    return stats.seconds, time.perf_counter() - started


def track_run(engine: Engine, fasta: Path, out: Path, window: int, overlap: int) -> float:
    """Seconds of `track_regions` writing llr-min of every contig into a bigWig (what `caduceus track` runs)."""
    with Fasta(fasta) as reference, track_writer(out, reference.contigs, "bigwig") as writer:
        regions = genome_order(all_contigs(reference), reference.contigs)
        return track_regions(engine, reference, regions, {"llr-min": writer}, window=window, overlap=overlap)[1]


def ism_run(engine: Engine, fasta: Path, bases: int, window: int, mode: str) -> float:
    """Seconds of `saturation_mutagenesis` of the first `bases` of chr1 (what `caduceus ism` runs)."""
    with Fasta(fasta) as reference:
        started = time.perf_counter()
        saturation_mutagenesis(engine, reference, Region("chr1", 0, bases), window=window, mode=mode)
        return time.perf_counter() - started


def codec_table(rows: np.ndarray, source: str, folder: Path, repeats: int) -> None:
    """Write MB per CPU second (through the real writer, which compresses on one core) and size ratio per
    codec of --compression. CPU time rather than wall time, so other load on the machine does not count."""
    region = Region("chr1", 0, len(rows), "r", "+")
    raw = len(rows) * rows.shape[1] * 2
    print(
        f"\n| codec ({source}, d = {rows.shape[1]}, float16, {len(rows):,} bases) | write MB per CPU s "
        "| size / raw | readers need |"
    )
    print("| --- | --- | --- | --- |")
    for codec in COMPRESSIONS:
        layout = Layout(d=rows.shape[1], precision="float16", compression=codec)
        path = folder / f"codec-{codec}.h5"
        times = []
        for _ in range(repeats):
            started = time.process_time()
            output = EmbeddingFile.create(path, [region], layout, {}, {})
            writer = output.region(0, len(rows))
            for start in range(0, len(rows), 16384):
                writer.add(rows[start : start + 16384])
            writer.close()
            output.finish()
            times.append(time.process_time() - started)
        need = "import hdf5plugin" if codec == "bitshuffle" else "h5py only"
        print(
            f"| {codec} | {raw / statistics.median(times) / 1e6:,.0f} | {path.stat().st_size / raw:.3f} | {need} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="checkpoint folder or hub id (default: the shipped model)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--rc", default="auto")
    parser.add_argument("--window", type=int, default=None, help="default: the model's training length")
    parser.add_argument("--windows", type=int, default=8, help="genome size in windows (2 contigs)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ism-bases", type=int, default=1024, help="region of the unmasked ISM line")
    parser.add_argument("--ism-masked-bases", type=int, default=16, help="region of the masked ISM line")
    parser.add_argument(
        "--codec-data",
        default="model",
        choices=["model", "synthetic"],
        help="codec table on the model-only output, or on 65,536 x 256 synthetic embedding-like values",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = open_model(args.model, None, args.device, args.dtype)
    args.window = args.window or model.default_window
    overlap = default_overlap(args.window)
    # Two contigs of equal length, so that every tile is a full window (as for a genome).
    stride = args.window - overlap
    contig = args.window + stride * max(0, args.windows // 2 - 1)
    lengths = [contig, contig]
    engine = Engine(model, batch_size=args.batch_size)
    device = next(model.parameters()).device
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"model {model.provenance['source']} ({model.variant}, d_model {model.config.d_model}, "
        f"{model.config.n_layer} layers) on {device} ({card}), "
        f"dtype {args.dtype}, rc {args.rc}, window {args.window}, overlap {overlap}, "
        f"{sum(lengths):,} bases, median of {args.repeats}\n"
    )

    model_only(model, engine, [args.window], args.window, overlap, args.rc)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fasta = folder / "genome.fa"
        write_fasta(fasta, len(lengths), contig, seed=1)
        # Rounds interleave every run, so a change in the machine's load touches all of them alike.
        model_seconds, pipeline, wall = [], {name: [] for name in CONFIGS}, {name: [] for name in CONFIGS}
        ism_bases = {"unmasked": args.ism_bases, "masked": args.ism_masked_bases}
        track_seconds, ism_seconds = [], {mode: [] for mode in ism_bases}
        for _ in range(args.repeats):
            seconds, rows = model_only(model, engine, lengths, args.window, overlap, args.rc)
            model_seconds.append(seconds)
            for name, layout in CONFIGS.items():
                out = folder / "out.h5"
                run_seconds, run_wall = end_to_end(model, engine, fasta, out, layout, args.window, overlap, args.rc)
                pipeline[name].append(run_seconds)
                wall[name].append(run_wall)
            track_seconds.append(track_run(engine, fasta, folder / "out.bw", args.window, overlap))
            for mode, bases in ism_bases.items():
                ism_seconds[mode].append(ism_run(engine, fasta, bases, args.window, mode))
        model_rate = sum(lengths) / statistics.median(model_seconds)
        print("| run | bases/s | of model-only | wall s, with opening FASTA and output |")
        print("| --- | --- | --- | --- |")
        print(f"| model only (engine, no I/O) | {model_rate:,.0f} | 100% | |")
        for name in CONFIGS:
            rate = sum(lengths) / statistics.median(pipeline[name])
            print(
                f"| caduceus embed, {name} | {rate:,.0f} | {rate / model_rate:.0%} "
                f"| {statistics.median(wall[name]):.1f} |"
            )
        rate = sum(lengths) / statistics.median(track_seconds)
        print(f"| caduceus track, llr-min bigWig | {rate:,.0f} | {rate / model_rate:.0%} | |")
        print("\n| run | positions/s (3 changes each) | region |")
        print("| --- | --- | --- |")
        for mode, bases in ism_bases.items():
            rate = bases / statistics.median(ism_seconds[mode])
            print(f"| caduceus ism --mode {mode} | {rate:,.1f} | {bases} bp |")
        codec_rows = rows if args.codec_data == "model" else synthetic_embeddings(1 << 16, 256)
        codec_table(codec_rows, f"{args.codec_data} output", folder, args.repeats)


if __name__ == "__main__":
    main()
