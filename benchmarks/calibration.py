"""How many sites `caduceus calibrate` needs for stable percentiles, and what calibration costs on the CPU.

Stability: two backgrounds of the same genome from different seeds, and a fixed set of test variants
(the variants of --test-sites sites of a third seed), scored once. For each sample size n, the
percentile of every test variant among each background's variants of its context
(`Background.percentiles`, as `score-variants --background` computes them); printed: the median
and 95th percentile of |difference| between the two backgrounds, SNVs and indels apart, with the
mean number of background variants per context. Each background of size n is the first n sites of
a random order of one pool of max(--sizes) sites (a random subset of a uniform sample is a uniform
sample of that size), so every site is scored once; indels are scored at the first max(--indel-sizes)
sites of that order. Sampling and scoring are calibrate's own (`sample_sites`, `SiteScorer`); the
model runs at its default window.

Cost: sites/s and windows/s of the shipped model (default window, --cost-sites sites) and of a
random-weight model of the published size (d_model 256, 16 layers, W 2,048; --published-sites
sites), with and without indels, extrapolated to 100,000 sites.

    python -m benchmarks.calibration --fasta examples/example.fa --threads 2
    python -m benchmarks.calibration --fasta examples/example.fa --no-cost --sizes 500,1000,2000,4000
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.score_variants import published_size_checkpoint
from caduceus_cli.calibration import Background
from caduceus_cli.commands.resolve import variant_window
from caduceus_cli.commands.runtime import open_model
from caduceus_cli.engine import Engine
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.regions import all_contigs
from caduceus_cli.model.load import default_model_path
from caduceus_cli.pipelines.calibrate import Sample, Scored, SiteScorer, sample_sites
from caduceus_cli.scoring.settings import DEFAULT_FLANK, Settings, percentile_name

MAX_INDEL = 10
EXTRAPOLATED_SITES = 100_000


class CountingEngine(Engine):
    """The engine, counting the windows it runs."""

    windows = 0

    def map(self, windows, head, rc="auto"):
        for item in super().map(windows, head, rc):
            self.windows += 1
            yield item


def subset(sample: Sample, indices: np.ndarray) -> Sample:
    """The sites `indices` of `sample` (in site order), each with its own draws."""
    indices = np.sort(indices)
    return dataclasses.replace(
        sample,
        sites=[sample.sites[i] for i in indices],
        deletion_lengths=sample.deletion_lengths[indices],
        insertion_lengths=sample.insertion_lengths[indices],
        inserted=sample.inserted[indices],
    )


def scored_rows(model, fasta_path: Path, settings: Settings, sample: Sample, indels: bool) -> list[Scored]:
    with Fasta(fasta_path) as reader, Fasta(fasta_path) as windows:
        scorer = SiteScorer(
            engine=Engine(model), reader_fasta=reader, window_fasta=windows, settings=settings, sample=sample,
            indels=indels,
        )  # fmt: skip
        return list(scorer.score(range(len(sample.sites))))


def pool(model, fasta_path: Path, settings: Settings, seed: int, sites: int, indel_sites: int) -> list[list[Scored]]:
    """The scored variants of each site of a `sites`-site sample, in a random order; indels at the first
    `indel_sites` of that order."""
    with Fasta(fasta_path) as fasta:
        sample = sample_sites(fasta, all_contigs(fasta), sites, seed, MAX_INDEL)
    order = np.random.default_rng(seed).permutation(len(sample.sites))
    by_site: dict[tuple[str, int], list[Scored]] = {}
    for part, indels in ((order[:indel_sites], True), (order[indel_sites:], False)):
        for row in scored_rows(model, fasta_path, settings, subset(sample, part), indels):
            by_site.setdefault((row.chrom, row.pos0), []).append(row)
    return [by_site[sample.sites[i]] for i in order]


def background(sites: list[list[Scored]], kinds: tuple[str, ...]) -> Background:
    rows = [row for site in sites for row in site if row.kind in kinds]
    llr = np.array([row.scores["llr"] for row in rows])
    return Background.from_rows("pool", {}, [row.context for row in rows], {"llr": llr})


def stability(model, fasta_path: Path, settings: Settings, args: argparse.Namespace) -> None:
    sizes, indel_sizes = args.sizes, args.indel_sizes
    started = time.monotonic()
    pools = [pool(model, fasta_path, settings, seed, max(sizes), max(indel_sizes, default=0)) for seed in (1, 2)]
    with Fasta(fasta_path) as fasta:
        tests = sample_sites(fasta, all_contigs(fasta), args.test_sites, 3, MAX_INDEL)
    test_rows = scored_rows(model, fasta_path, settings, tests, bool(indel_sizes))
    print(f"\nstability: {len(test_rows)} test variants at {args.test_sites} sites; two backgrounds, seeds 1 and 2; "
          f"model and scoring {time.monotonic() - started:.0f} s\n")  # fmt: skip
    print("| variants | sites per background | background variants per context (mean) "
          "| median abs pct difference | 95th pct abs difference |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    fits = {}
    for label, kinds, group_sizes in (("SNVs", ("snv",), sizes), ("indels", ("del", "ins"), indel_sizes)):
        tested = [row for row in test_rows if row.kind in kinds]
        for n in group_sizes:
            first, second = (background(sites[:n], kinds) for sites in pools)
            differences = []
            for row in tested:
                one = first.percentiles(row.context, row.scores).get(percentile_name("llr"))
                other = second.percentiles(row.context, row.scores).get(percentile_name("llr"))
                if one is not None and other is not None:
                    differences.append(abs(one - other))
            # contexts proper (A[C>T]G, del:3), not the pooled substitutions (C>T)
            per_context = np.mean([len(v) for c, v in first.distributions["llr"].items() if "[" in c or ":" in c])
            if not differences:  # no test variant's context in both backgrounds: far too few sites
                continue
            median, high = np.median(differences), np.percentile(differences, 95)
            fits.setdefault(label, []).append((n, median, high))
            print(f"| {label} | {n:,} | {per_context:,.0f} | {median:.1f} | {high:.1f} |")
    for label, points in fits.items():  # sampling noise shrinks as 1/sqrt(n): extrapolate from the largest n
        n, median, high = points[-1]
        scale = (n / EXTRAPOLATED_SITES) ** 0.5
        print(f"\n{label}, extrapolated as 1/sqrt(n) from {n:,} sites to {EXTRAPOLATED_SITES:,}: "
              f"median {median * scale:.2f}, 95th percentile {high * scale:.2f} percentile points")  # fmt: skip


def cost(name: str, model, fasta_path: Path, settings: Settings, sites: int, threads: int) -> None:
    with Fasta(fasta_path) as fasta:
        sample = sample_sites(fasta, all_contigs(fasta), sites, 4, MAX_INDEL)
    scored_rows(model, fasta_path, settings, subset(sample, np.arange(1)), True)  # warm-up: threads, kernels
    for indels in (False, True):
        engine = CountingEngine(model)
        with Fasta(fasta_path) as reader, Fasta(fasta_path) as windows:
            scorer = SiteScorer(
                engine=engine, reader_fasta=reader, window_fasta=windows, settings=settings, sample=sample,
                indels=indels,
            )  # fmt: skip
            started = time.monotonic()
            count = sum(1 for _ in scorer.score(range(len(sample.sites))))
            seconds = time.monotonic() - started
        rate = len(sample.sites) / seconds
        hours = EXTRAPOLATED_SITES / rate / 3600
        cells = [name, settings.window, "SNVs + indels" if indels else "SNVs", len(sample.sites), count,
                 f"{engine.windows / len(sample.sites):.2f}", f"{engine.windows / seconds:.1f}", f"{rate:.2f}",
                 f"{hours:,.1f}", threads]  # fmt: skip
        print("| " + " | ".join(map(str, cells)) + " |")


def settings_for(model) -> Settings:
    window = variant_window(model.default_window, None, None)
    return Settings(scores=("llr",), probs=False, window=window, flank=DEFAULT_FLANK, on_ref_mismatch="flag")


def sizes(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fasta", type=Path, default=Path("examples/example.fa"))
    parser.add_argument("--model", default=None, help="checkpoint folder or hub id (default: the shipped model)")
    parser.add_argument("--sizes", type=sizes, default=[500, 1000, 2000, 4000], help="sites per background, SNVs")
    parser.add_argument("--indel-sizes", type=sizes, default=[250, 500, 1000], help="sites per background, indels")
    parser.add_argument("--test-sites", type=int, default=200)
    parser.add_argument("--cost-sites", type=int, default=40)
    parser.add_argument("--published-sites", type=int, default=4)
    parser.add_argument("--no-stability", action="store_true")
    parser.add_argument("--no-cost", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = open_model(args.model or str(default_model_path()), None, "cpu", "float32")
    print(f"CPU, float32, {args.threads} threads (torch.get_num_threads() = {torch.get_num_threads()})")
    if not args.no_stability:
        stability(model, args.fasta, settings_for(model), args)
    if not args.no_cost:
        print("\ncost, extrapolated to 100,000 sites\n")
        print("| model | W | variants | sites | variants scored | windows per site | windows/s | sites/s "
              "| hours per 100,000 sites | threads |")  # fmt: skip
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        shipped = f"shipped ({model.variant.upper()}, d_model {model.config.d_model}, {model.config.n_layer} layers)"
        cost(shipped, model, args.fasta, settings_for(model), args.cost_sites, args.threads)
        with tempfile.TemporaryDirectory() as folder:
            big = open_model(published_size_checkpoint(Path(folder)), None, "cpu", "float32")
            cost("published size, random weights (PH)", big, args.fasta, settings_for(big), args.published_sites,
                 args.threads)  # fmt: skip


if __name__ == "__main__":
    main()
