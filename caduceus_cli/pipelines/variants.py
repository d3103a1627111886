"""Scoring a VCF: records read and classified ahead, the engine, scores written behind in input order.

Three stages overlap: a reader thread parses records into chunks and lists the windows each
chunk needs (`ScorePlan`), the calling thread runs those windows through the engine (which
reads ahead itself), and a writer thread puts the scores into the records and writes them in
input order. At most a few chunks are in memory at any time, whatever the size of the input.

`score_vcf` takes opened resources (the engine, two handles on the FASTA, the input VCF, and a
`VcfWriter`, for which the header must declare the score fields, or a `ScoreTable`) and returns
its `Tally`. With a background (`calibration.Background`) each score also gets its percentile
there. `scored_alleles` is what any record's ALTs are scored as: `caduceus calibrate` scores its
sampled variants through it, `ScorePlan` and `PlanRunner` too.
"""

from __future__ import annotations

import logging
import math
import shlex
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np
import pysam

from caduceus_cli.alleles import Change, classify_alleles, placements
from caduceus_cli.calibration import Background, variant_context
from caduceus_cli.engine import Engine, Window
from caduceus_cli.errors import InputError
from caduceus_cli.io.contigs import name_sample
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.tables import format_row
from caduceus_cli.io.vcf import HtslibMessages, VcfWriter, count_records, input_name, open_vcf, records
from caduceus_cli.scoring import (
    CLASS_KEY,
    FLAG_KEY,
    INFO_KEYS,
    LOGITS,
    PROBS,
    ScorePlan,
    Settings,
    fits_window,
    percentile_name,
)
from caduceus_cli.stages import WriteBehind, read_ahead
from caduceus_cli.terminal import format_rate, progress_bar

log = logging.getLogger("caduceus")

COMMAND_KEY = "caduceus_command"  # the header line recording the command that wrote the file

CHUNK_RECORDS = 2048  # records per chunk: many full batches per chunk, little memory per chunk
LOG_EVERY_S = 60  # progress lines in the log when stderr is not a terminal
CHUNKS_AHEAD = 2  # chunks parsed ahead of the engine, and chunks waiting for the writer

@dataclass
class Chunk:
    """Consecutive records, the alleles of each, and the windows they need."""

    # record, FASTA contig, per ALT the places its change is scored at (`placements`) or its flag, and
    # per ALT its context in the background (None without one, or for a change with no context)
    records: list[tuple[pysam.VariantRecord, str | None, list[tuple[Change, ...] | str], list[str | None]]]
    plan: ScorePlan


@dataclass
class Tally:
    """What a run did (`score_vcf` returns it): counts, flags, seconds, and the contig check's state."""

    records: int = 0
    skipped: int = 0
    scored: int = 0
    classes: Counter = field(default_factory=Counter)  # alleles scored, by class
    flags: Counter = field(default_factory=Counter)
    matched_contig: bool = False
    vcf_contigs: set[str] = field(default_factory=set)
    seconds: float = 0.0


def score_vcf(
    engine: Engine,
    variants: pysam.VariantFile,
    writer: VcfWriter | ScoreTable,
    settings: Settings,
    reader_fasta: Fasta,
    window_fasta: Fasta,
    messages: HtslibMessages,
    source: str = "-",
    shard_range: tuple[int, int, set[str]] | None = None,
    quiet: bool = True,
    background: Background | None = None,
) -> Tally:
    """Score and write every record of `variants` (records [first, last) of `shard_range` when given).

    `reader_fasta` and `window_fasta` are two handles on the same FASTA (one per thread); `source`
    names the input in messages ('-' for stdin). Unsharded, a run where no record is on a FASTA
    contig is an InputError. With `background`, each score's percentile there is written too (the
    header must declare them). The caller closes `writer`.
    """
    run = _Run(settings, engine, reader_fasta, window_fasta, messages, source, quiet, background)
    run.score(variants, shard_range, writer)
    return run.tally


class _Run:
    """One pass over the records: read and classify, run the engine, write in order."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        reader_fasta: Fasta,
        window_fasta: Fasta,
        messages: HtslibMessages,
        source: str,
        quiet: bool,
        background: Background | None,
    ):
        self.settings, self.engine, self.messages = settings, engine, messages
        self.source, self.quiet, self.background = source, quiet, background
        self.reader_fasta, self.window_fasta = reader_fasta, window_fasta
        self._written = written_values(settings, background)
        self.tally = Tally()
        self._stop = threading.Event()
        self._runner = PlanRunner(engine, window_fasta)

    def score(
        self,
        variants: pysam.VariantFile,
        shard_range: tuple[int, int, set[str]] | None,
        writer: VcfWriter | ScoreTable,
    ) -> None:
        """Score and write every record (of the shard); unsharded, fail if no contig was in the FASTA."""
        total = shard_range[1] - shard_range[0] if shard_range else None
        started = time.monotonic()
        with progress_bar(self.quiet, "records") as progress:
            if total is None and not progress.disable and self.source != "-":
                total = count_records(self.source, self.messages)[0]  # a bar with a total and an ETA
            task = progress.add_task("score-variants", total=total, rate="-")
            last_log = started

            def write(chunk: Chunk) -> None:  # in the writer thread
                nonlocal last_log
                self._write_chunk(chunk, writer)
                now = time.monotonic()
                rate = format_rate(self.tally.records, now - started)
                progress.update(task, advance=len(chunk.records), rate=rate)
                if progress.disable and now - last_log >= LOG_EVERY_S:  # no bar: a line now and then
                    log.info("%d records written, %s records/s", self.tally.records, rate)
                    last_log = now

            behind = WriteBehind(write, CHUNKS_AHEAD, "caduceus-vcf-writer")
            try:
                chunks = read_ahead(self._chunks(variants, shard_range), CHUNKS_AHEAD, "caduceus-vcf-reader", self._stop)
                for chunk in chunks:
                    self._runner.run(chunk.plan)  # in this (the calling) thread
                    behind.put(chunk)
            finally:
                behind.close()
        if shard_range is None and self.tally.records and not self.tally.matched_contig:
            raise InputError(no_contig_message(self.source, self.tally.vcf_contigs, self.reader_fasta))
        self.tally.seconds = time.monotonic() - started
        self._log_summary()

    def _log_summary(self) -> None:
        flagged = ", ".join(f"{count} {flag}" for flag, count in sorted(self.tally.flags.items())) or "none"
        classes = ", ".join(f"{count} {kind}" for kind, count in sorted(self.tally.classes.items()))
        log.info(
            "%d records written (%d skipped), %d alleles scored (%s), not scored: %s; %.1f s, %s records/s",
            self.tally.records,
            self.tally.skipped,
            self.tally.scored,
            classes or "none",
            flagged,
            self.tally.seconds,
            format_rate(self.tally.records, self.tally.seconds),
        )

    # reader thread ------------------------------------------------------------------------

    def _chunks(
        self, variants: pysam.VariantFile, shard_range: tuple[int, int, set[str]] | None
    ) -> Iterator[Chunk]:
        first, last = shard_range[:2] if shard_range else (0, None)
        chunk = self._new_chunk()
        for number, record in enumerate(records(variants, self.source, self.messages)):
            if self._stop.is_set() or (last is not None and number >= last):
                break
            if number < first:
                continue
            contig = self.reader_fasta.resolve(record.contig)
            alleles = self._alleles(record, contig, number + 1)
            if alleles is None:
                continue
            chunk.records.append((record, contig, alleles, self._contexts(contig, alleles)))
            for allele in alleles:
                for change in () if isinstance(allele, str) else allele:
                    chunk.plan.add(contig, change)
            if len(chunk.records) == CHUNK_RECORDS:
                self.messages.relay_warnings(f"{input_name(self.source)}: ")
                yield chunk
                chunk = self._new_chunk()
        self.messages.relay_warnings(f"{input_name(self.source)}: ")
        if chunk.records:
            yield chunk

    def _new_chunk(self) -> Chunk:
        return Chunk([], ScorePlan(self.settings, self.engine.model.tokenizer))

    def _alleles(
        self, record: pysam.VariantRecord, contig: str | None, number: int
    ) -> list[tuple[Change, ...] | str] | None:
        """`scored_alleles` of the record; None when the record is skipped (--on-ref-mismatch skip)."""
        self.tally.vcf_contigs.add(record.contig)
        self.tally.matched_contig |= contig is not None
        alleles = scored_alleles(self.reader_fasta, contig, record.start, record.ref, record.alts or (), self.settings)
        if alleles and alleles[0] == "ref_mismatch" and self.settings.on_ref_mismatch != "flag":
            if self.settings.on_ref_mismatch == "error":
                fasta_ref = self.reader_fasta.fetch(contig, record.start, record.start + len(record.ref))
                raise InputError(
                    f"{input_name(self.source)}: record {number} at {record.contig}:{record.pos}: "
                    f"REF {record.ref} differs from the FASTA ({fasta_ref}) "
                    "(--on-ref-mismatch error; use flag or skip to go on)"
                )
            self.tally.skipped += 1
            return None
        return alleles

    def _contexts(self, contig: str | None, alleles: list[tuple[Change, ...] | str]) -> list[str | None]:
        """Each ALT's context in the background (none without a background)."""
        if self.background is None:
            return [None] * len(alleles)
        def fetch(start: int, end: int) -> str:
            return self.reader_fasta.fetch(contig, start, end)

        return [None if isinstance(allele, str) else variant_context(allele[0], fetch) for allele in alleles]

    # writer thread ------------------------------------------------------------------------

    def _write_chunk(self, chunk: Chunk, writer: VcfWriter | ScoreTable) -> None:
        for record, contig, alleles, contexts in chunk.records:
            per_allele = [a if isinstance(a, str) else chunk.plan.allele_scores(contig, a) for a in alleles]
            if self.background is not None:
                per_allele = [
                    v if isinstance(v, str) else v | self.background.percentiles(context, v)
                    for v, context in zip(per_allele, contexts, strict=True)
                ]
            classes = ["." if isinstance(a, str) else a[0].kind for a in alleles]
            if isinstance(writer, ScoreTable):
                writer.write(record, classes, per_allele)
            else:
                _set_info(record, classes, per_allele, self._written)
                writer.write(record)
            self.tally.records += 1
            for allele in alleles:
                if isinstance(allele, str):
                    self.tally.flags[allele] += 1
                else:
                    self.tally.scored += 1
                    self.tally.classes[allele[0].kind] += 1


def scored_alleles(
    fasta: Fasta, contig: str | None, start: int, ref: str, alts: Sequence[str], settings: Settings
) -> list[tuple[Change, ...] | str]:
    """What each ALT of a record at 0-based `start` on FASTA contig `contig` (None: not in the FASTA) is
    scored as: the places its change is scored at (`alleles.placements`), or the flag saying why it is
    not (`alleles.FLAGS`; `too_long` when it does not fit the window)."""
    fasta_ref = None if contig is None else fasta.fetch(contig, start, start + len(ref))
    return [
        _placed(allele, contig, fasta, settings) if isinstance(allele, Change) else allele
        for allele in classify_alleles(ref, tuple(alts), fasta_ref, start)
    ]


def _placed(change: Change, contig: str, fasta: Fasta, settings: Settings) -> tuple[Change, ...] | str:
    if not fits_window(change, settings):
        return "too_long"
    return placements(change, lambda start, end: fasta.fetch(contig, start, end), fasta.contigs[contig])


def written_values(settings: Settings, background: Background | None) -> list[str]:
    """The values written for each ALT, in order: the scores, PROBS with --probs, and with a background
    each score's percentile there."""
    percentiles = [percentile_name(score) for score in settings.scores] if background is not None else []
    return [*settings.scores, *(PROBS if settings.probs else ()), *percentiles]


class PlanRunner:
    """Runs the windows of `ScorePlan`s through the engine and hands each output back to its plan."""

    def __init__(self, engine: Engine, fasta: Fasta):
        self.engine, self.fasta = engine, fasta
        self._cached_span: tuple[str, int, int] | None = None
        self._cached_ids = np.empty(0, dtype=np.int64)

    def run(self, plan: ScorePlan, on_window: Callable[[], None] | None = None) -> None:
        """Run every window of `plan`; `on_window` is called after each (a progress bar)."""
        for jobs, output in ((plan.logit_jobs, "logits"), (plan.embed_jobs, "embed")):
            if jobs:
                for key, rows in self.engine.map(self._windows(plan, jobs), output=output, rc="auto"):
                    plan.keep(key, rows)
                    if on_window is not None:
                        on_window()

    def _windows(self, plan: ScorePlan, jobs: Iterable[tuple]) -> Iterator[Window]:
        """Windows built as the engine asks for them (in its read-ahead thread), sharing reference reads."""
        for key in jobs:
            ids, rows = plan.window_for(key, self._reference_ids(plan.window_span(key)))
            yield Window(ids=ids, key=key, rows=rows)

    def _reference_ids(self, span: tuple[str, int, int]) -> np.ndarray:
        # A position's masked, reference and alternative windows come one after another: read once.
        if span != self._cached_span:
            contig, start, end = span
            sequence = self.fasta.fetch(contig, start, end)
            where = f"{self.fasta.path}:{contig}:{start + 1}-{end}"
            self._cached_ids = self.engine.model.tokenizer.encode(sequence, where=where)
            self._cached_span = span
        return self._cached_ids


class ScoreTable:
    """The table output of score-variants: one tab-separated row per ALT allele, in input order.

    Columns: chrom, pos, id, ref, alt as in the VCF, variant_class (of the change, `alleles.CLASSES`; '.' when
    not scored), each requested score (and p_ref, p_alt with --probs, and <score>_pct with a background:
    its percentile there, NaN for a change with no context in it), logit_ref and logit_alt of a
    SNV's logits row that gave the LLR (`ScorePlan.logit_row`), and flag ('.' when scored, else why
    not; the allele's values are then NaN). A score that does not apply to the class is NaN. Score
    names are written with '_' for '-', so pandas columns are attributes.
    """

    def __init__(self, stream: TextIO, settings: Settings, background: Background | None = None):
        self._stream = stream
        self._names = [*written_values(settings, background), *LOGITS]
        scores = (name.replace("-", "_") for name in self._names)
        self.columns = ("chrom", "pos", "id", "ref", "alt", "variant_class", *scores, "flag")
        stream.write(format_row(self.columns))

    def write(
        self, record: pysam.VariantRecord, classes: list[str], per_allele: list[dict[str, float] | str]
    ) -> None:
        for alt, kind, value in zip(record.alts or (), classes, per_allele, strict=True):
            flag, scores = (value, {}) if isinstance(value, str) else (".", value)
            cells = [scores.get(name, math.nan) for name in self._names]
            row = (record.contig, record.pos, record.id or ".", record.ref, alt, kind, *cells, flag)
            self._stream.write(format_row(row))


def _set_info(
    record: pysam.VariantRecord,
    classes: list[str],
    per_allele: list[dict[str, float] | str],
    names: list[str],
) -> None:
    """Per-ALT values of `names` ('.' where not scored or not defined for the class), the class of each
    change, and CADUCEUS_FLAG where any allele was not scored."""
    if not per_allele:
        return
    for name in names:
        record.info[INFO_KEYS[name]] = tuple(None if isinstance(v, str) else v.get(name) for v in per_allele)
    record.info[CLASS_KEY] = tuple(classes)
    flags = tuple(v if isinstance(v, str) else "." for v in per_allele)
    if any(flag != "." for flag in flags):
        record.info[FLAG_KEY] = flags
    elif FLAG_KEY in record.info:
        del record.info[FLAG_KEY]


def no_contig_message(source: str, vcf_contigs: set[str], fasta: Fasta) -> str:
    return (
        f"{input_name(source)}: no record is on a contig of {fasta.path}: VCF contigs "
        f"{name_sample(sorted(vcf_contigs))}; FASTA contigs {name_sample(list(fasta.contigs))} "
        "(wrong reference? --chrom-map maps names)"
    )


# ---------------------------------------------------------------------------------------------
# joining the outputs of `score-variants --shard I/N` (caduceus merge)


def shards_in_order(paths: Sequence[str], messages: HtslibMessages) -> tuple[list[str], pysam.VariantHeader]:
    """The shard files in --shard order (from each `##caduceus_command`) and the first one's header.

    Shards are contiguous runs of records, so in this order their records are the single run's.
    A missing or repeated shard, shards of different splits, and a header that differs from the
    first shard's (other than `##caduceus_command`: another model, window or score set) are errors.
    """
    headers = {}
    for path in paths:
        with open_vcf(path, messages) as vcf:
            headers[path] = vcf.header.copy()
    shards = {path: _shard_of(path, header) for path, header in headers.items()}
    counts = sorted({count for _, count in shards.values()})
    if len(counts) != 1:
        raise InputError(f"shards of different splits (N = {', '.join(map(str, counts))}) cannot be joined")
    count = counts[0]
    by_index: dict[int, str] = {}
    for path, (index, _) in shards.items():
        if index in by_index:
            raise InputError(f"{path}: shard {index}/{count} given twice (also {by_index[index]})")
        by_index[index] = path
    missing = sorted(set(range(1, count + 1)) - by_index.keys())
    if missing:
        raise InputError(f"shard {missing[0]}/{count} is missing from the files to join")
    ordered = [by_index[index] for index in range(1, count + 1)]
    expected = _header_lines(headers[ordered[0]])
    for path in ordered[1:]:
        got = _header_lines(headers[path])
        for want, line in zip(expected, got, strict=False):
            if want != line:
                raise InputError(f"{path}: header line {line!r} differs from {ordered[0]} ({want!r})")
        if len(got) != len(expected):
            raise InputError(f"{path}: header has a different number of lines than {ordered[0]}")
    return ordered, headers[ordered[0]]


def join_shards(ordered: Sequence[str], writer: VcfWriter, messages: HtslibMessages) -> int:
    """Write the records of the shards, in the order given; return how many."""
    count = 0
    for path in ordered:
        with open_vcf(path, messages) as vcf:
            for record in records(vcf, path, messages):
                writer.write(record)
                count += 1
    return count


def _shard_of(path: str, header: pysam.VariantHeader) -> tuple[int, int]:
    """(I, N) of the `--shard I/N` in the file's ##caduceus_command line."""
    for line in header.records:
        if line.key != COMMAND_KEY:
            continue
        words = shlex.split(line.value)
        for word, following in zip(words, [*words[1:], ""], strict=True):
            if word == "--shard":
                value = following
            elif word.startswith("--shard="):
                value = word.removeprefix("--shard=")
            else:
                continue
            index, slash, count = value.partition("/")
            if slash and index.isdigit() and count.isdigit():
                return int(index), int(count)
    raise InputError(f"{path}: its ##{COMMAND_KEY} has no --shard I/N; not a score-variants shard")


def _header_lines(header: pysam.VariantHeader) -> list[str]:
    return [line for line in str(header).splitlines() if not line.startswith(f"##{COMMAND_KEY}=")]
