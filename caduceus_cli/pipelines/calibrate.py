"""`caduceus calibrate`: random changes at random sites of a genome, scored as `score-variants` scores them.

Sites (`sample_sites`): positions drawn uniformly among the A, C, G, T bases of the regions (their
union: a base once, however many regions hold it), without replacement, from the seed alone. The
A/C/G/T bases are counted block by block, ranks among them drawn, and only the blocks holding a
drawn rank are read again; each site then draws a deletion length, an insertion length and the
inserted bases. Every run draws the whole sample, so a shard (`--shard I/N`: a contiguous run of
the sites) scores exactly the sites the single run gives it.

Variants of a site at p (0-based), in this order: the 3 other bases (SNVs), then, with indels, the
deletion of the L bases after p and the insertion of L random bases after p, written as a VCF
writes them, the base at p as padding. Each is scored as `score-variants` scores that record:
`scored_alleles` (trimming, placement in a repeat, window fit), then `ScorePlan` and `PlanRunner`
with the same settings. A variant score-variants would flag (a deletion reaching an N or the
contig's end) is left out.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from caduceus_cli import __version__
from caduceus_cli.alleles import Change
from caduceus_cli.calibration import CONTEXT_RULE, run_identity, variant_context
from caduceus_cli.engine import Engine
from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io.backgrounds import COMMAND_KEY, BackgroundWriter
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.outputs import claimed
from caduceus_cli.io.regions import Region
from caduceus_cli.io.tables import table_output
from caduceus_cli.model.identity import ModelIdentity
from caduceus_cli.model.load import file_sha256
from caduceus_cli.scoring.outcomes import Flagged, scored_alleles
from caduceus_cli.scoring.plan import PlanRunner, ScorePlan
from caduceus_cli.scoring.settings import Settings
from caduceus_cli.signals import WHOLE_FILES_ONLY, interrupt_says
from caduceus_cli.terminal import LOG_EVERY_S, counted, counts, format_rate, progress_bar
from caduceus_cli.tokens import ACGT
from caduceus_cli.windows import SHARD_KEY, contiguous_shard

log = logging.getLogger("caduceus")

BLOCK = 1 << 20  # reference bases counted at a time while sampling
CHUNK_SITES = 512  # sites whose windows are planned and run together (~2,500 windows with indels)
_IS_ACGT = np.zeros(256, dtype=bool)
_IS_ACGT[list(b"ACGTacgt")] = True


@dataclass(frozen=True)
class Sample:
    """The sites of a calibration in site order (FASTA contig order, then position) and what each draws.

    `intervals` are the regions' union (contig, start, end); `acgt_bases` the A/C/G/T bases in it;
    site i deletes `deletion_lengths[i]` bases and inserts the first `insertion_lengths[i]` of
    `inserted[i]` (columns of A, C, G, T)."""

    intervals: list[tuple[str, int, int]]
    acgt_bases: int
    sites: list[tuple[str, int]]
    deletion_lengths: np.ndarray
    insertion_lengths: np.ndarray
    inserted: np.ndarray

    def regions_sha256(self) -> str:
        digest = hashlib.sha256()
        for chrom, start, end in self.intervals:
            digest.update(f"{chrom}\t{start}\t{end}\n".encode())
        return digest.hexdigest()

    def variants(self, index: int, fasta: Fasta, indels: bool) -> list[tuple[str, str]]:
        """(REF, ALT) of each variant of site `index`, all at its position (module docstring)."""
        chrom, p0 = self.sites[index]
        base = fasta.fetch(chrom, p0, p0 + 1).upper()
        out = [(base, alt) for alt in ACGT if alt != base]
        if indels:
            deleted = int(self.deletion_lengths[index])
            out.append((fasta.fetch(chrom, p0, p0 + 1 + deleted).upper(), base))
            inserted = self.inserted[index, : self.insertion_lengths[index]]
            out.append((base, base + "".join(ACGT[column] for column in inserted)))
        return out



@dataclass(frozen=True, kw_only=True)
class CalibrateJob:
    """One `calibrate` run: `sites` random A/C/G/T sites (`seed`) of `regions` of the FASTA `genome`
    (`regions_given`: -R/-r asked for them, else every contig), 3 SNVs and, with `indels`, a deletion
    and an insertion of up to `max_indel` bases each, scored with `settings`; the `shard` (index,
    count), 0-based, of the sites when given. Writes `output` (a gzipped background, under a
    temporary name) with how it was made in its header; `command_line` is recorded there."""

    output: Path
    genome: Path
    regions: Sequence[Region]
    regions_given: bool
    settings: Settings
    sites: int = 100_000
    seed: int = 1
    indels: bool = True
    max_indel: int = 10
    shard: tuple[int, int] | None = None
    command_line: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        """Settings that cannot give a background are refused when the job is made, before any work."""
        if self.indels and self.max_indel > self.settings.window // 2:
            raise UsageError(
                f"--max-indel {self.max_indel}: an indel is scored when it spans at most W/2 = {self.settings.window // 2}"
            )

    def run(self, engine: Engine, reader_fasta: Fasta, window_fasta: Fasta, quiet: bool = True) -> Counter:
        """Sample, score and write the background (claimed); return the variants written by class."""
        with interrupt_says(WHOLE_FILES_ONLY.format(outputs=self.output)), claimed(self.output):
            sample = sample_sites(reader_fasta, self.regions, self.sites, self.seed, self.max_indel)
            part = contiguous_shard(len(sample.sites), self.shard)
            shard_text = f"{self.shard[0] + 1}/{self.shard[1]}" if self.shard else ""
            log.info(
                "%s of %s (seed %d)%s", counted(len(sample.sites), "site"), counted(sample.acgt_bases, "A/C/G/T base"),
                self.seed, f"; shard {shard_text}: sites {part.start + 1:,}-{part.stop:,}" if self.shard else "",
            )  # fmt: skip
            meta = {
                "caduceus_version": __version__,
                COMMAND_KEY: self.command_line,
                **run_identity(ModelIdentity.of(engine.model), self.settings),
                "scores": ",".join(self.settings.scores),
                **self._sample_meta(sample),
                **({SHARD_KEY: shard_text} if self.shard else {}),
            }
            scorer = SiteScorer(
                engine=engine, reader_fasta=reader_fasta, window_fasta=window_fasta, settings=self.settings,
                sample=sample, indels=self.indels,
            )  # fmt: skip
            with table_output(self.output) as stream:
                classes = write_background(scorer, part, BackgroundWriter(stream, meta, self.settings.scores), quiet)
        log.info("wrote %s", self.output)
        return classes

    def _sample_meta(self, sample: Sample) -> dict[str, str]:
        """What was sampled: genome, regions, seed, sizes, indels and the context rule."""
        bases = sum(end - start for _, start, end in sample.intervals)
        chosen = "the union of -R/-r" if self.regions_given else "all contigs"
        return {
            "genome": self.genome.name,
            "genome_sha256": file_sha256(self.genome),
            "regions": f"{chosen}: {counted(len(sample.intervals), 'interval')}, {bases:,} bp",
            "regions_sha256": sample.regions_sha256(),
            "acgt_bases": str(sample.acgt_bases),
            "seed": str(self.seed),
            "sites_requested": str(self.sites),
            "sites_used": str(len(sample.sites)),
            "indels": "yes" if self.indels else "no",
            "max_indel": str(self.max_indel),
            "contexts": CONTEXT_RULE,
        }


def sample_sites(fasta: Fasta, regions: Sequence[Region], count: int, seed: int, max_indel: int) -> Sample:
    """`count` sites (fewer when the regions hold fewer A/C/G/T bases) drawn from `seed` (module docstring)."""
    intervals = _union(regions, list(fasta.contigs))
    blocks = [(chrom, start, min(start + BLOCK, end)) for chrom, s, end in intervals for start in range(s, end, BLOCK)]
    counts = np.array([_acgt(fasta.fetch(*block)).sum() for block in blocks], dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        raise InputError("the regions hold no A, C, G or T base to sample")
    rng = np.random.default_rng(seed)
    ranks = np.sort(rng.choice(total, size=min(count, total), replace=False))
    first_rank = np.concatenate([[0], np.cumsum(counts)])
    owner = np.searchsorted(first_rank, ranks, side="right") - 1  # the block of each rank, ascending
    sites: list[tuple[str, int]] = []
    held, starts = np.unique(owner, return_index=True)
    for block, begin, stop in zip(held, starts, [*starts[1:], len(ranks)], strict=True):
        chrom, start, end = blocks[block]
        offsets = np.flatnonzero(_acgt(fasta.fetch(chrom, start, end)))
        sites += [(chrom, start + int(offset)) for offset in offsets[ranks[begin:stop] - first_rank[block]]]
    n = len(sites)
    return Sample(
        intervals,
        total,
        sites,
        deletion_lengths=rng.integers(1, max_indel + 1, n),
        insertion_lengths=rng.integers(1, max_indel + 1, n),
        inserted=rng.integers(0, 4, (n, max_indel)),
    )


@dataclass(frozen=True)
class Scored:
    """One sampled variant: position (0-based), REF and ALT as a VCF writes them, class, context, scores."""

    chrom: str
    pos0: int
    ref: str
    alt: str
    kind: str
    context: str | None
    scores: dict[str, float]


@dataclass(kw_only=True)
class SiteScorer:
    """Scores the variants of a sample's sites through the score-variants machinery (module docstring).

    `reader_fasta` and `window_fasta` are two handles on the genome (the engine reads windows on its
    own thread); `left_out` counts the variants left out, by the flag score-variants gives them."""

    engine: Engine
    reader_fasta: Fasta
    window_fasta: Fasta
    settings: Settings
    sample: Sample
    indels: bool
    left_out: Counter = field(default_factory=Counter)

    def score(self, sites: range, on_sites: Callable[[int], None] | None = None) -> Iterator[Scored]:
        """The scored variants of `sites`, in site order; `on_sites(n)` after each chunk of n sites."""
        runner = PlanRunner(self.engine, self.window_fasta)
        for first in range(sites.start, sites.stop, CHUNK_SITES):
            chunk = range(first, min(first + CHUNK_SITES, sites.stop))
            plan = ScorePlan(self.settings, self.engine.model.tokenizer)
            planned = list(self._planned(chunk, plan))
            runner.run(plan)
            for chrom, pos0, ref, alt, places in planned:
                fetch = self._fetcher(chrom)
                scores = plan.allele_scores(chrom, places)
                yield Scored(chrom, pos0, ref, alt, places[0].kind, variant_context(places[0], fetch), scores)
            if on_sites is not None:
                on_sites(len(chunk))

    def _planned(self, chunk: range, plan: ScorePlan) -> Iterator[tuple[str, int, str, str, tuple[Change, ...]]]:
        for index in chunk:
            chrom, pos0 = self.sample.sites[index]
            for ref, alt in self.sample.variants(index, self.reader_fasta, self.indels):
                (outcome,) = scored_alleles(self.reader_fasta, chrom, pos0, ref, (alt,), self.settings)
                if isinstance(outcome, Flagged):
                    self.left_out[outcome.flag] += 1
                    continue
                for change in outcome.places:
                    plan.add(chrom, change)
                yield chrom, pos0, ref, alt, outcome.places

    def _fetcher(self, chrom: str) -> Callable[[int, int], str]:
        return lambda start, end: self.reader_fasta.fetch(chrom, start, end)


def write_background(scorer: SiteScorer, sites: range, writer: BackgroundWriter, quiet: bool) -> Counter:
    """Score `sites` and write their rows; progress on stderr as score-variants shows it. Returns the
    variants written, by class."""
    classes: Counter = Counter()
    started = last_log = time.monotonic()
    done = 0
    with progress_bar(quiet, "sites") as progress:
        task = progress.add_task("calibrate", total=len(sites), rate="-")

        def advance(count: int) -> None:
            nonlocal done, last_log
            done += count
            now = time.monotonic()
            rate = format_rate(done, now - started)
            progress.update(task, advance=count, rate=rate)
            # no bar: a line now and then, but not at the end, where the closing line gives the count
            if progress.disable and done < len(sites) and now - last_log >= LOG_EVERY_S:
                log.info("%s of %s scored, %s sites/s", f"{done:,}", counted(len(sites), "site"), rate)
                last_log = now

        for row in scorer.score(sites, advance):
            writer.write(row.chrom, row.pos0, row.ref, row.alt, row.kind, row.context, row.scores)
            classes[row.kind] += 1
    seconds = time.monotonic() - started
    log.info(
        "%s, %s (%s), left out: %s; %.1f s, %s sites/s",
        counted(len(sites), "site"),
        counted(sum(classes.values()), "variant"),
        counts(classes),
        counts(scorer.left_out),
        seconds,
        format_rate(len(sites), seconds),
    )
    return classes


def _union(regions: Sequence[Region], contig_order: list[str]) -> list[tuple[str, int, int]]:
    """The bases of `regions` as disjoint intervals in FASTA order (strands ignored)."""
    rank = {chrom: index for index, chrom in enumerate(contig_order)}
    merged: list[tuple[str, int, int]] = []
    for region in sorted(regions, key=lambda r: (rank[r.chrom], r.start)):
        if merged and merged[-1][0] == region.chrom and region.start <= merged[-1][2]:
            chrom, start, end = merged[-1]
            merged[-1] = (chrom, start, max(end, region.end))
        else:
            merged.append((region.chrom, region.start, region.end))
    return merged


def _acgt(sequence: str) -> np.ndarray:
    """Whether each base is A, C, G or T (either case)."""
    return _IS_ACGT[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8)]
