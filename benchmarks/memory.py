"""Peak resident memory of every command against the size of its input: it must stay flat.

Each run is `caduceus <command> ...` in a fresh process (this checkout's CLI `main`, with every
process setting it makes), and its peak is the process's VmHWM at exit: the "Maximum resident set
size" that `/usr/bin/time -v` prints for the same command. A tiny run first compiles the CPU
kernels into numba's cache, which a machine's first run does once (about 100 MiB more peak).
Inputs are generated in --workdir: the A. thaliana excerpt of examples/example.fa repeated to the
size asked for (one contig, Chr1), VCFs of one SNV every 250 bp on it, and random-weight
checkpoints of the published sizes (memory does not depend on the weights' values).

Commands (--commands): embed, track (--bases of genome each, whole contig), ism and ism-masked
(--ism-bases, at most 10,000), llr, llr-unmasked, emb-cos (score-variants -s ..., --records
SNVs each), llr-indels (score-variants -s llr of --records insertions and deletions of 1-5 bp,
alternating, one every 250 bp: two windows each). Models (--models):

  shipped       weights/caduceus-ph-tair10: PH, d_model 64, 4 layers, trained at 1,024 bp
  published-ph  PH, d_model 256, 16 layers, trained at 131,072 bp (the Caduceus hub models' size)
  published-ps  PS, the same size
  largest-ps    PS, d_model 1024, 32 layers, trained at 512 bp (PlantCaduceus' largest)
  plantcad2-small  PS with Mamba-2 mixers, d_model 768, 24 layers, trained at 8,192 bp (PlantCAD2-Small)

Every command runs at its default window (score-variants and ism: the training length, at most
2,048; embed and track: the training length) unless --window / --embed-window say otherwise;
`--embed-window score` tiles embed and track at the score window, for the ratio docs/scaling.md states.

    python -m benchmarks.memory                                      # shipped model, every command
    python -m benchmarks.memory --commands llr --records 500 2000 8000
    python -m benchmarks.memory --models published-ph --commands embed llr --records 64 256 \\
        --bases 65536 --embed-window score

Needs the package importable (`pip install -e .` or `make .venv/.installed`); runs from any
directory. One Markdown table on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "weights" / "caduceus-ph-tair10"
EXAMPLE_FASTA = ROOT / "examples" / "example.fa"
SNV_SPACING = 250  # bp between generated SNVs, as in issue 23's measurements
CONTIG = "Chr1"

# name -> (variant, d_model, n_layer, training length, mixer); None: the shipped checkpoint
MODELS: dict[str, tuple[str, int, int, int, str] | None] = {
    "shipped": None,
    "published-ph": ("ph", 256, 16, 131_072, "Mamba1"),
    "published-ps": ("ps", 256, 16, 131_072, "Mamba1"),
    "largest-ps": ("ps", 1024, 32, 512, "Mamba1"),
    "plantcad2-small": ("ps", 768, 24, 8_192, "Mamba2"),
}
# command -> (score-variants -s, the variants scored)
SCORES = {
    "llr": ("llr", "snv"),
    "llr-unmasked": ("llr-unmasked", "snv"),
    "emb-cos": ("emb-cos", "snv"),
    "llr-indels": ("llr", "indel"),
}
COMMANDS = ("embed", "track", "ism", "ism-masked", *SCORES)
MAX_DEFAULT_SCORE_WINDOW = 2048  # scoring.MAX_DEFAULT_WINDOW, not imported: this process stays small

# The child: the command line's own entry point, reporting its peak at exit.
_CHILD = """
import atexit, os, sys

def report_peak():
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:")).split()[1]
    with open(os.environ["MEMORY_BENCHMARK_PEAK"], "w") as out:
        out.write(peak)

atexit.register(report_peak)
sys.argv[0] = "caduceus"
from caduceus_cli.cli import main
main()
"""

_MAKE_CHECKPOINT = """
import sys
from benchmarks.model_speed import random_model
from caduceus_cli.model.load import save_checkpoint
variant, d_model, n_layer, length, mixer, folder = sys.argv[1:]
save_checkpoint(random_model(variant, int(d_model), int(n_layer), mixer=mixer), folder, max_length=int(length))
"""


@dataclass
class Run:
    model: str
    command: str
    size: int  # records (score-variants, ism-masked positions) or bases
    window: int
    argv: list[str]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- inputs ----------------------------------------------------------------------------------------
def example_sequence() -> str:
    lines = EXAMPLE_FASTA.read_text().splitlines()
    return "".join(line.strip() for line in lines if not line.startswith(">")).upper()


def write_genome(path: Path, bases: int) -> str:
    """A one-contig FASTA of `bases` bp (the example excerpt repeated) and its .fai; returns the sequence."""
    unit = example_sequence()
    sequence = (unit * (bases // len(unit) + 1))[:bases]
    if not path.exists():
        offset = len(f">{CONTIG}\n")
        with open(path, "w") as out:
            out.write(f">{CONTIG}\n")
            for start in range(0, bases, 80):
                out.write(sequence[start : start + 80] + "\n")
        Path(f"{path}.fai").write_text(f"{CONTIG}\t{bases}\t{offset}\t80\t81\n")
    return sequence


def write_variants(path: Path, sequence: str, records: int, margin: int, kind: str) -> None:
    """`records` variants, one every SNV_SPACING bp from `margin` on. kind 'snv': ALT the next base of
    ACGT after REF; 'indel': deletions and insertions of 1-5 bases after a padding base, alternating."""
    if path.exists():
        return
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID={CONTIG},length={len(sequence)}>",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    position = margin
    while len(lines) - 3 < records:
        ref = sequence[position]
        if kind == "snv":
            alt = "ACGT"[("ACGT".index(ref) + 1) % 4]
        else:
            count = len(lines) - 3
            length = count % 5 + 1
            if count % 2:
                ref, alt = sequence[position : position + length + 1], ref
            else:
                alt = ref + "ACGTA"[:length]
        lines.append(f"{CONTIG}\t{position + 1}\t.\t{ref}\t{alt}\t.\t.\t.")
        position += SNV_SPACING
    path.write_text("\n".join(lines) + "\n")


def checkpoint(name: str, workdir: Path) -> Path:
    spec = MODELS[name]
    if spec is None:
        return SHIPPED
    folder = workdir / f"model-{name}"
    if not (folder / "model.safetensors").exists():
        log(f"making a random {name} checkpoint in {folder}")
        subprocess.run([sys.executable, "-c", _MAKE_CHECKPOINT, *map(str, spec), str(folder)],
                       check=True, env=child_env())
    return folder


def training_length(name: str) -> int:
    spec = MODELS[name]
    return 1024 if spec is None else spec[3]


# --- runs ------------------------------------------------------------------------------------------
def plan(args: argparse.Namespace, workdir: Path) -> list[Run]:
    runs = []
    for name in args.models:
        model = str(checkpoint(name, workdir))
        trained = training_length(name)
        score_window = args.window or min(trained, MAX_DEFAULT_SCORE_WINDOW)
        if args.embed_window == "score":
            embed_window = score_window
        else:
            embed_window = int(args.embed_window) if args.embed_window else trained
        common = ["-m", model, "-q", "-f", *(["--threads", str(args.threads)] if args.threads else [])]
        for command in args.commands:
            if command in ("embed", "track"):
                for bases in args.bases:
                    fasta = workdir / f"genome-{bases}.fa"
                    write_genome(fasta, bases)
                    out = workdir / ("out.h5" if command == "embed" else "out.bw")
                    argv = [command, str(fasta), "-o", str(out), "--window", str(embed_window), *common]
                    runs.append(Run(name, command, bases, embed_window, argv))
            elif command in ("ism", "ism-masked"):
                for bases in args.ism_bases:
                    genome_bases = bases + 2 * score_window + 2
                    fasta = workdir / f"genome-{genome_bases}.fa"
                    write_genome(fasta, genome_bases)
                    region = f"{CONTIG}:{score_window + 1}-{score_window + bases}"
                    mode = "masked" if command == "ism-masked" else "unmasked"
                    argv = ["ism", str(fasta), "-r", region, "--mode", mode, "-w", str(score_window),
                            "-o", str(workdir / "out.tsv"), *common]
                    runs.append(Run(name, command, bases, score_window, argv))
            else:
                for records in args.records:
                    margin = score_window
                    genome_bases = margin * 2 + records * SNV_SPACING  # the excerpt is all A, C, G, T
                    fasta = workdir / f"genome-{genome_bases}.fa"
                    sequence = write_genome(fasta, genome_bases)
                    score, kind = SCORES[command]
                    vcf = workdir / f"{kind}s-{records}-{margin}.vcf"
                    write_variants(vcf, sequence, records, margin, kind)
                    argv = ["score-variants", str(vcf), "--fasta", str(fasta), "-s", score,
                            "-w", str(score_window), "-O", "t", "-o", str(workdir / "out.tsv"), *common]
                    runs.append(Run(name, command, records, score_window, argv))
    return runs


def measure(run: Run, workdir: Path, timeout: float) -> tuple[int | None, float, str]:
    """(peak resident bytes or None, seconds, error) of one run in a fresh process."""
    peak_file = workdir / "peak"
    peak_file.unlink(missing_ok=True)
    env = child_env()
    env["MEMORY_BENCHMARK_PEAK"] = str(peak_file)
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-c", _CHILD, *run.argv], env=env, capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - started, f"over {timeout:.0f} s"
    seconds = time.monotonic() - started
    if result.returncode != 0 or not peak_file.exists():
        return None, seconds, (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
    return int(peak_file.read_text()) * 1024, seconds, ""


def size_text(run: Run) -> str:
    if run.command in SCORES:
        return f"{run.size:,} records"
    return f"{run.size:,} bp"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=["shipped"])
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    parser.add_argument("--records", nargs="+", type=int, default=[500, 2000, 8000],
                        help="variants per score-variants run")
    parser.add_argument("--bases", nargs="+", type=int, default=[500_000, 2_000_000],
                        help="genome size of embed and track runs")
    parser.add_argument("--ism-bases", nargs="+", type=int, default=[1000, 4000],
                        help="region size of ism runs (at most 10,000)")
    parser.add_argument("--window", type=int, help="score-variants and ism window (default: the model's)")
    parser.add_argument("--embed-window", help="embed and track tile window: bases, or 'score' for the "
                        "score window (default: the model's training length)")
    parser.add_argument("--threads", type=int, help="--threads of every run (default: the command's)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--workdir", type=Path, help="inputs and checkpoints, kept (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="caduceus-memory-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        runs = plan(args, workdir)
        # A machine's first run compiles the CPU kernels into numba's cache (about 100 MiB more, once):
        # not what a job measures after its first run.
        fasta = workdir / "genome-warm-up.fa"
        write_genome(fasta, 2048)
        warm_up = ["ism", str(fasta), "-r", f"{CONTIG}:1000-1009", "-w", "64", "-o", str(workdir / "out.tsv"), "-q", "-f"]
        log("warm-up (compiles the CPU kernels once per machine): caduceus " + " ".join(warm_up))
        measure(Run("shipped", "ism", 10, 64, warm_up), workdir, args.timeout)
        print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
              f"Python {platform.python_version()}; peak = VmHWM of a fresh `caduceus` process.\n")
        print("| model | command | input | window | peak RSS (MiB) | seconds |")
        print("| --- | --- | --- | --- | --- | --- |")
        for run in runs:
            log(f"{run.model}: caduceus {' '.join(run.argv)}")
            peak, seconds, error = measure(run, workdir, args.timeout)
            value = f"{peak / 2**20:,.0f}" if peak is not None else f"failed: {error}"
            print(f"| {run.model} | {run.command} | {size_text(run)} | {run.window:,} | {value} | {seconds:,.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
