"""Scoring a VCF: records read and classified ahead, the engine, scores written behind in input order.

Three stages overlap: a reader thread parses records into chunks and lists the windows each
chunk needs (`ScorePlan`), the calling thread runs those windows through the engine (which
reads ahead itself), and a writer thread puts the scores into the records and writes them in
input order. At most a few chunks are in memory at any time, whatever the size of the input.

`ScoreJob` is one `score-variants` run: its settings and the output it owns (a VCF, BCF or table,
a file written under a temporary name, indexed and renamed when complete, or stdout; the model,
settings and shard recorded in its header). `score_vcf` is its engine room: it takes opened
resources (the engine, two handles on the FASTA, the input VCF, and a `VcfWriter` or `ScoreTable`)
and returns its `Tally`. With a background (`calibration.Background`) each score also gets its
percentile there.

One record's way: `RecordScorer` reads it (reader thread) and classifies each ALT
(`scoring.outcomes.scored_alleles`: `Placed` or `Flagged`), its chunk's `ScorePlan` lists the windows
the placed changes need, `PlanRunner` runs them (calling thread), and the writer thread reads each
ALT's scores from the plan and writes the record with them (`VcfScores` or `ScoreTable`).

    settings = Settings(scores=("llr",), probs=False, window=1024, flank=768, on_ref_mismatch="flag")
    job = ScoreJob(vcf="calls.vcf.gz", settings=settings, output=Path("scored.vcf.gz"), fmt="z", write_index=True)
    with Fasta("genome.fa") as reader, Fasta("genome.fa") as windows:
        tally = job.run(Engine(model), reader, windows)
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pysam

from caduceus_cli import __version__
from caduceus_cli.calibration import Background, run_identity, variant_context
from caduceus_cli.engine import Engine
from caduceus_cli.errors import InputError
from caduceus_cli.io.contigs import name_sample
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.inputs import is_stream
from caduceus_cli.io.outputs import STDOUT, claimed, partial_path, write_errors
from caduceus_cli.io.tables import format_row, table_output
from caduceus_cli.io.vcf import (
    COMMAND_KEY,
    HtslibMessages,
    Saved,
    VcfWriter,
    add_scoring_header,
    check_resumable,
    count_records,
    input_name,
    open_vcf,
    record_key,
    records,
    vcf_output,
)
from caduceus_cli.io.vcf_info import CLASS_KEY, FLAG_KEY, INFO_KEYS, info_fields, percentile_fields
from caduceus_cli.model.identity import ModelIdentity
from caduceus_cli.scoring.outcomes import NONE, AlleleOutcome, Placed, scored_alleles
from caduceus_cli.scoring.plan import PlanRunner, ScorePlan
from caduceus_cli.scoring.settings import LOGITS, PROBS, Settings, percentile_name
from caduceus_cli.stages import WriteBehind, read_ahead
from caduceus_cli.terminal import LOG_EVERY_S, counted, counts, format_rate, number_text, progress_bar
from caduceus_cli.windows import SHARD_KEY, contiguous_shard

log = logging.getLogger("caduceus")


# the flags --on-ref-mismatch acts on: the record and the FASTA disagree about the reference
REFERENCE_FLAGS = ("past_contig_end", "ref_mismatch")
CHUNK_RECORDS = 2048  # records per chunk: many full batches per chunk, little memory per chunk
CHUNKS_AHEAD = 2  # chunks parsed ahead of the engine, and chunks waiting for the writer


@dataclass(frozen=True)
class PendingRecord:
    """A record read and classified, waiting for its scores: the FASTA contig it is on (None: not in the
    FASTA), each ALT's outcome, and each ALT's context in the background (None without a background, or
    for a change with no context)."""

    record: pysam.VariantRecord
    contig: str | None
    outcomes: list[AlleleOutcome]
    contexts: list[str | None]


@dataclass
class Chunk:
    """Consecutive records and the windows their placed changes need."""

    records: list[PendingRecord]
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


TABLE = "t"  # the table output format (-O t), beside VCF's v, z and b
RESUMABLE = ("v", "z")  # formats whose interrupted file is kept and continued (appended to)


@dataclass(frozen=True, kw_only=True)
class ScoreJob:
    """One `score-variants` run: every record of `vcf` ('-': stdin), or the `shard` (index, count) of
    them (0-based; contiguous runs of records), scored with `settings`, written as `fmt` ("v", "z",
    "b" or TABLE) to `output` (None: stdout), indexed with `write_index`. `background` adds
    percentiles; `threads` compress; `command_line` is recorded in the header. A VCF file output
    ("v", "z") interrupted keeps its records in OUT.partial; `resume` continues it (RESUMABLE)."""

    vcf: str
    settings: Settings
    output: Path | None = None
    fmt: str = "v"
    write_index: bool = False
    shard: tuple[int, int] | None = None
    background: Background | None = None
    threads: int = 1
    resume: bool = False
    command_line: str = field(default="", compare=False)

    def run(self, engine: Engine, reader_fasta: Fasta, window_fasta: Fasta, quiet: bool = True) -> Tally:
        """Score and write every record (the output claimed, under a temporary name); return the tally.
        `reader_fasta` and `window_fasta` are two handles on the reference, one per thread."""
        with HtslibMessages() as messages, claimed(*([] if self.output is None else [self.output])):
            shard_range = self._shard_range(messages)
            if shard_range is not None:
                _check_some_contig_known(shard_range[2], reader_fasta, self.vcf)
            model = ModelIdentity.of(engine.model)
            if self.background is not None:
                self.background.check_matches(run_identity(model, self.settings), self.settings.scores)
                log.info("percentiles among %s", _background_text(self.background))
                self.background.warn_if_coarse()
            with open_vcf(self.vcf, messages) as variants:
                if self.fmt != TABLE:
                    fields = info_fields(self.settings, model)
                    if self.background is not None:
                        fields += percentile_fields(self.background, self.settings.scores)
                    add_scoring_header(variants.header, fields, self._meta(model), self.vcf)
                _warn_if_header_contigs_unknown(variants.header, reader_fasta, self.vcf)
                with self._writer(variants.header, messages) as writer:
                    return score_vcf(
                        engine, variants, writer, self.settings, reader_fasta=reader_fasta,
                        window_fasta=window_fasta, messages=messages, source=self.vcf, shard_range=shard_range,
                        quiet=quiet, background=self.background,
                    )  # fmt: skip

    @contextmanager
    def _writer(self, header: pysam.VariantHeader, messages: HtslibMessages) -> Iterator[VcfWriter | ScoreTable]:
        """Where the scored records go: a table or a VCF, on stdout or in the output file (written under a
        temporary name, renamed on success)."""
        if self.fmt == TABLE:
            if self.output is None:
                with write_errors(STDOUT):
                    yield ScoreTable(sys.stdout, self.settings, self.background)
                    sys.stdout.flush()
            else:
                with table_output(self.output) as stream:
                    yield ScoreTable(stream, self.settings, self.background)
        elif self.output is None:
            with write_errors(STDOUT):
                writer = VcfWriter("-", self.fmt, header, messages, self.threads)
                yield writer
                writer.close()
        else:
            with self._vcf_file(header, messages) as writer:
                yield writer

    @contextmanager
    def _vcf_file(self, header: pysam.VariantHeader, messages: HtslibMessages) -> Iterator[VcfWriter]:
        """Write (and index) under a temporary name, renamed on success; a stale index of the output goes.
        An interrupted VCF keeps its records there, which `resume` continues after."""
        partial = partial_path(self.output)
        if self.resume:
            # checked before vcf_output takes charge of the partial file: a refused resume leaves it as it was
            self._check_same_input(check_resumable(partial, header, messages), messages)
        elif partial.exists():
            log.warning(
                "%s: starting over, discarding an interrupted run's partial file; --resume continues from it instead",
                partial,
            )
        with vcf_output(
            self.output, self.fmt, header, messages, self.threads, index=self.write_index,
            resumable=self.fmt in RESUMABLE, resume=self.resume,
        ) as writer:  # fmt: skip
            yield writer

    def _check_same_input(self, saved: Saved, messages: HtslibMessages) -> None:
        """The saved records must be the first of this input (of its shard): the last one is compared."""
        if saved.records == 0:  # stopped before its first chunk was written: nothing to compare
            return
        first = self._shard_range(messages)[0] if self.shard else 0
        with open_vcf(self.vcf, messages) as variants:
            for number, record in enumerate(records(variants, self.vcf, messages), 1):
                if number == first + saved.records:
                    if record_key(record) == saved.last:
                        return
                    break
        chrom, pos = saved.last[:2] if saved.last else ("?", "?")
        raise InputError(
            f"{partial_path(self.output)}: cannot resume: its last record ({chrom}:{pos}) is not record "
            f"{first + saved.records} of {input_name(self.vcf)} (another input?); run without --resume to start over"
        )

    def _shard_range(self, messages: HtslibMessages) -> tuple[int, int, set[str]] | None:
        """Records [first, last) of this shard and the contigs of the whole file, from a counting pass.

        Shards are contiguous runs of records of near-equal count, so the shard outputs concatenated
        in order are the single run's output. Counting needs a second read of the input: a file,
        not stdin (the command refuses --shard on stdin before any work).
        """
        if self.shard is None:
            return None
        total, contigs = count_records(self.vcf, messages)
        part = contiguous_shard(total, self.shard)
        return part.start, part.stop, contigs

    def _meta(self, model: ModelIdentity) -> dict[str, str]:
        """The header lines that say how the file was made: version, command, model and settings, the
        shard this is (as data: `caduceus merge` orders shards by it), the background."""
        meta = {
            "caduceus_version": __version__,
            COMMAND_KEY: self.command_line,
            "caduceus_model": model.vcf_meta(self.settings.window, self.settings.variant_index),
        }
        if self.shard is not None:
            meta[SHARD_KEY] = f"{self.shard[0] + 1}/{self.shard[1]}"
        if self.background is not None:
            background = self.background
            about = ("genome", "genome_sha256", "regions_sha256", "seed", "sites_used", "max_indel")
            meta["caduceus_background"] = f"file={background.path};variants={background.variants};" + ";".join(
                f"{key}={background.meta.get(key)}" for key in about
            )
        return meta


def _check_some_contig_known(contigs: set[str], fasta: Fasta, source: str) -> None:
    if contigs and not any(fasta.resolve(name) for name in contigs):
        raise InputError(no_contig_message(source, contigs, fasta))


def _warn_if_header_contigs_unknown(header: pysam.VariantHeader, fasta: Fasta, source: str) -> None:
    declared = list(header.contigs)
    if declared and not any(fasta.resolve(name) for name in declared):
        log.warning(
            "%s: none of the contigs its header declares (%s) is in %s (%s); records there are flagged",
            input_name(source),
            name_sample(declared),
            fasta.path,
            name_sample(list(fasta.contigs)),
        )


def _background_text(background: Background) -> str:
    meta = background.meta
    return (
        f"{background.path}: {counted(background.variants, 'variant')} at {number_text(meta.get('sites_used'))} sites of "
        f"{meta.get('genome')} (seed {meta.get('seed')}, {meta.get('regions')})"
    )


def score_vcf(
    engine: Engine,
    variants: pysam.VariantFile,
    writer: VcfWriter | ScoreTable,
    settings: Settings,
    *,
    reader_fasta: Fasta,
    window_fasta: Fasta,
    messages: HtslibMessages,
    source: str = "-",
    shard_range: tuple[int, int, set[str]] | None = None,
    quiet: bool = True,
    background: Background | None = None,
) -> Tally:
    """Score and write every record of `variants` (records [first, last) of `shard_range` when given),
    after the records an interrupted run saved in `writer` (`ScoreJob` checks they are the first of
    this input).

    `reader_fasta` and `window_fasta` are two handles on the same FASTA (one per thread); `source`
    names the input in messages ('-' for stdin). Unsharded, a run where no record is on a FASTA
    contig is an InputError. With `background`, each score's percentile there is written too (the
    header must declare them). The caller closes `writer`.
    """
    scorer = RecordScorer(
        settings, engine, reader_fasta=reader_fasta, window_fasta=window_fasta, messages=messages, source=source,
        quiet=quiet, background=background,
    )  # fmt: skip
    if isinstance(writer, VcfWriter):
        scorer.score(variants, shard_range, VcfScores(writer, written_values(settings, background)), writer.saved)
    else:
        scorer.score(variants, shard_range, writer)
    return scorer.tally


class RecordScorer:
    """One pass over the records: read and classify, run the engine, write in order."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
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
        self.tally = Tally()
        self._stop = threading.Event()
        self._runner = PlanRunner(engine, window_fasta)

    def score(
        self,
        variants: pysam.VariantFile,
        shard_range: tuple[int, int, set[str]] | None,
        writer: VcfScores | ScoreTable,
        saved: Saved | None = None,
    ) -> None:
        """Score and write every record (of the shard) after those `saved`; unsharded, fail if no contig
        was in the FASTA."""
        total = shard_range[1] - shard_range[0] if shard_range else None
        started = time.monotonic()
        with progress_bar(self.quiet, "records") as progress:
            if total is None and not progress.disable and not is_stream(self.source):
                total = count_records(self.source, self.messages)[0]  # a bar with a total and an ETA
            task = progress.add_task("score-variants", total=total, rate="-")
            last_log = started

            def write(chunk: Chunk) -> None:  # in the writer thread
                self._write_chunk(chunk, writer)
                rate = format_rate(self.tally.records, time.monotonic() - started)
                progress.update(task, advance=len(chunk.records), rate=rate)

            behind = WriteBehind(write, CHUNKS_AHEAD, "caduceus-vcf-writer")
            chunks = read_ahead(
                self._chunks(variants, shard_range, saved), CHUNKS_AHEAD, "caduceus-vcf-reader", self._stop
            )
            try:
                for chunk in chunks:
                    now = time.monotonic()
                    # no bar: a line now and then, before a chunk is scored, so never one beside the closing line
                    if progress.disable and now - last_log >= LOG_EVERY_S:
                        done = self.tally.records
                        rate = format_rate(done, now - started)
                        log.info("%s written so far, %s records/s", counted(done, "record"), rate)
                        last_log = now
                    self._runner.run(chunk.plan)  # in this (the calling) thread
                    behind.put(chunk)
            finally:
                # the reader stops now, not when the generator is collected: after an interrupt the
                # input is closed while the chunks scored so far are written
                chunks.close()
                behind.close()
        if shard_range is None and self.tally.records and not self.tally.matched_contig:
            raise InputError(no_contig_message(self.source, self.tally.vcf_contigs, self.reader_fasta))
        self.tally.seconds = time.monotonic() - started
        self._log_summary()

    def _log_summary(self) -> None:
        log.info(
            "%s written (%s skipped), %s scored (%s), not scored: %s; %.1f s, %s records/s",
            counted(self.tally.records, "record"),
            f"{self.tally.skipped:,}",
            counted(self.tally.scored, "allele"),
            counts(self.tally.classes),
            counts(self.tally.flags),
            self.tally.seconds,
            format_rate(self.tally.records, self.tally.seconds),
        )

    # reader thread ------------------------------------------------------------------------

    def _chunks(
        self, variants: pysam.VariantFile, shard_range: tuple[int, int, set[str]] | None, saved: Saved | None
    ) -> Iterator[Chunk]:
        first, last = shard_range[:2] if shard_range else (0, None)
        done = first + (saved.records if saved else 0)  # records before this are in the output already
        chunk = self._new_chunk()
        for number, record in enumerate(records(variants, self.source, self.messages)):
            if self._stop.is_set() or (last is not None and number >= last):
                break
            if number < done:
                if number >= first:
                    self._skip_saved(record)
                continue
            contig = self.reader_fasta.resolve(record.contig)
            outcomes = self._outcomes(record, contig, number + 1)
            if outcomes is None:
                continue
            chunk.records.append(PendingRecord(record, contig, outcomes, self._contexts(contig, outcomes)))
            for outcome in outcomes:
                if isinstance(outcome, Placed):
                    for change in outcome.places:
                        chunk.plan.add(contig, change)
            if len(chunk.records) == CHUNK_RECORDS:
                self.messages.relay_warnings(f"{input_name(self.source)}: ")
                yield chunk
                chunk = self._new_chunk()
        self.messages.relay_warnings(f"{input_name(self.source)}: ")
        if chunk.records:
            yield chunk

    def _skip_saved(self, record: pysam.VariantRecord) -> None:
        """A record an interrupted run scored and saved: counted for the contig check only."""
        self.tally.vcf_contigs.add(record.contig)
        self.tally.matched_contig |= self.reader_fasta.resolve(record.contig) is not None

    def _new_chunk(self) -> Chunk:
        return Chunk([], ScorePlan(self.settings, self.engine.model.tokenizer))

    def _outcomes(self, record: pysam.VariantRecord, contig: str | None, number: int) -> list[AlleleOutcome] | None:
        """`scored_alleles` of the record; None when the record is skipped (--on-ref-mismatch skip)."""
        self.tally.vcf_contigs.add(record.contig)
        self.tally.matched_contig |= contig is not None
        outcomes = scored_alleles(self.reader_fasta, contig, record.start, record.ref, record.alts or (), self.settings)
        if outcomes and outcomes[0].flag in REFERENCE_FLAGS and self.settings.on_ref_mismatch != "flag":
            if self.settings.on_ref_mismatch == "error":
                raise InputError(
                    f"{input_name(self.source)}: record {number} at {record.contig}:{record.pos}: "
                    f"{self._mismatch(record, contig, outcomes[0].flag)} "
                    "(--on-ref-mismatch error; use flag or skip to go on)"
                )
            self.tally.skipped += 1
            return None
        return outcomes

    def _mismatch(self, record: pysam.VariantRecord, contig: str, flag: str) -> str:
        """How a record's REF disagrees with the FASTA: past the contig's end, or other bases."""
        if flag == "past_contig_end":
            length = self.reader_fasta.contigs[contig]
            return (
                f"REF {record.ref} reaches past the end of {contig} ({length:,} bp in {self.reader_fasta.path}); "
                "a VCF of another assembly version?"
            )
        fasta_ref = self.reader_fasta.fetch(contig, record.start, record.start + len(record.ref))
        return f"REF {record.ref} differs from the FASTA ({fasta_ref})"

    def _contexts(self, contig: str | None, outcomes: list[AlleleOutcome]) -> list[str | None]:
        """Each ALT's context in the background (none without a background)."""
        if self.background is None:
            return [None] * len(outcomes)

        def fetch(start: int, end: int) -> str:
            return self.reader_fasta.fetch(contig, start, end)

        return [variant_context(o.places[0], fetch) if isinstance(o, Placed) else None for o in outcomes]

    # writer thread ------------------------------------------------------------------------

    def _write_chunk(self, chunk: Chunk, writer: VcfScores | ScoreTable) -> None:
        for pending in chunk.records:
            values = [
                self._values(chunk.plan, pending.contig, outcome, context)
                for outcome, context in zip(pending.outcomes, pending.contexts, strict=True)
            ]
            writer.write(pending.record, pending.outcomes, values)
            self.tally.records += 1
            for outcome in pending.outcomes:
                if isinstance(outcome, Placed):
                    self.tally.scored += 1
                    self.tally.classes[outcome.kind] += 1
                else:
                    self.tally.flags[outcome.flag] += 1

    def _values(
        self, plan: ScorePlan, contig: str | None, outcome: AlleleOutcome, context: str | None
    ) -> dict[str, float]:
        """The values of one ALT: its scores, with a background their percentiles (in `context`); none
        (empty) when not scored."""
        if not isinstance(outcome, Placed):
            return {}
        values = plan.allele_scores(contig, outcome.places)
        if self.background is not None:
            values |= self.background.percentiles(context, values)
        return values


def written_values(settings: Settings, background: Background | None) -> list[str]:
    """The values written for each ALT, in order: the scores, PROBS with --probs, and with a background
    each score's percentile there."""
    percentiles = [percentile_name(score) for score in settings.scores] if background is not None else []
    return [*settings.scores, *(PROBS if settings.probs else ()), *percentiles]


class VcfScores:
    """The VCF output of score-variants: each record written with its ALTs' values of `names` in INFO
    (Number=A, '.' where not scored or not defined for the class), the class of each change, and
    CADUCEUS_FLAG where any ALT was not scored."""

    def __init__(self, writer: VcfWriter, names: list[str]):
        self._writer, self._names = writer, names

    def write(
        self, record: pysam.VariantRecord, outcomes: list[AlleleOutcome], values: list[dict[str, float]]
    ) -> None:
        if outcomes:
            for name in self._names:
                record.info[INFO_KEYS[name]] = tuple(v.get(name) for v in values)
            record.info[CLASS_KEY] = tuple(outcome.kind for outcome in outcomes)
            flags = tuple(outcome.flag for outcome in outcomes)
            if any(flag != NONE for flag in flags):
                record.info[FLAG_KEY] = flags
            elif FLAG_KEY in record.info:
                del record.info[FLAG_KEY]
        self._writer.write(record)


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
        self, record: pysam.VariantRecord, outcomes: list[AlleleOutcome], values: list[dict[str, float]]
    ) -> None:
        for alt, outcome, scores in zip(record.alts or (), outcomes, values, strict=True):
            cells = [scores.get(name, math.nan) for name in self._names]
            row = (record.contig, record.pos, record.id or ".", record.ref, alt, outcome.kind, *cells, outcome.flag)
            self._stream.write(format_row(row))


def no_contig_message(source: str, vcf_contigs: set[str], fasta: Fasta) -> str:
    return (
        f"{input_name(source)}: no record is on a contig of {fasta.path}: VCF contigs "
        f"{name_sample(sorted(vcf_contigs))}; FASTA contigs {name_sample(list(fasta.contigs))} "
        "(wrong reference? --chrom-map maps names)"
    )
