"""`caduceus score-variants`: zero-shot variant-effect scores for every record of a VCF/BCF.

Three stages overlap: a reader thread parses records into chunks and lists the windows each
chunk needs (`ScorePlan`), the calling thread runs those windows through the engine (which
reads ahead itself), and a writer thread puts the scores into the records and writes them in
input order. At most a few chunks are in memory at any time, whatever the size of the input.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import pysam
import typer

from caduceus_cli import __version__
from caduceus_cli.commands.common import (
    BatchSizeOpt,
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    LogFileOpt,
    ModelOpt,
    QuietOpt,
    RevisionOpt,
    ShardOpt,
    ThreadsOpt,
    command_line,
    open_model,
    parse_shard,
    set_threads,
)
from caduceus_cli.engine import Engine, Window, read_ahead
from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io.atomic import atomic_output, check_writable_output, partial_path
from caduceus_cli.io.contigs import name_sample, read_chrom_map
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.vcf import (
    FLAGS,
    HtslibMessages,
    InfoField,
    Snv,
    VcfWriter,
    add_scoring_header,
    classify_alleles,
    count_records,
    declared_contigs,
    index_path,
    input_name,
    needs_csi,
    open_vcf,
    output_format,
    records,
    removed_on_error,
    write_index,
)
from caduceus_cli.scoring import PROBS, ScorePlan, check_window
from caduceus_cli.terminal import format_rate, progress_bar, setup_logging
from caduceus_cli.tokens import tokenize

log = logging.getLogger("caduceus")

# Default --window: the model's training length, at most this. The README's window table shows
# the masked LLR of the shipped model hardly changes past a few hundred bases, while the cost of
# every score grows with W; 2,048 keeps the published 131k models at a practical rate.
MAX_DEFAULT_WINDOW = 2048
DEFAULT_FLANK = 768  # as in the Caduceus paper's variant-effect features (1,537 positions around the variant)
CHUNK_RECORDS = 2048  # records per chunk: many full batches per chunk, little memory per chunk
LOG_EVERY_S = 60  # progress lines in the log when stderr is not a terminal
CHUNKS_AHEAD = 2  # chunks parsed ahead of the engine, and chunks waiting for the writer

INFO_KEYS = {
    "llr": "CADUCEUS_LLR",
    "llr-unmasked": "CADUCEUS_LLR_UNMASKED",
    "emb-cos": "CADUCEUS_EMB_COS",
    "emb-l2": "CADUCEUS_EMB_L2",
    "p-ref": "CADUCEUS_P_REF",
    "p-alt": "CADUCEUS_P_ALT",
}
FLAG_KEY = "CADUCEUS_FLAG"


class Score(str, Enum):
    llr = "llr"
    llr_unmasked = "llr-unmasked"
    emb_cos = "emb-cos"
    emb_l2 = "emb-l2"


class OnRefMismatch(str, Enum):
    flag = "flag"
    skip = "skip"
    error = "error"


class OutputType(str, Enum):
    v = "v"
    z = "z"
    b = "b"


@dataclass(frozen=True)
class Settings:
    scores: tuple[str, ...]
    probs: bool
    window: int
    flank: int
    on_ref_mismatch: str


@dataclass
class Chunk:
    """Consecutive records, the alleles of each, and the windows they need."""

    records: list[tuple[pysam.VariantRecord, str | None, list[Snv | str]]]  # record, FASTA contig, alleles
    plan: ScorePlan


@dataclass
class Tally:
    """Counts for the closing log line and the contig check."""

    records: int = 0
    skipped: int = 0
    scored: int = 0
    flags: Counter = field(default_factory=Counter)
    matched_contig: bool = False
    vcf_contigs: set[str] = field(default_factory=set)


def score_variants(
    fasta: Annotated[Path, typer.Option("--fasta", help="Reference FASTA (plain or bgzip), required.")],
    vcf: Annotated[
        str, typer.Argument(help="VCF, VCF.gz or BCF to score; '-' (the default) reads stdin.")
    ] = "-",
    chrom_map: Annotated[
        Path | None, typer.Option("--chrom-map", help="Two columns 'VCF-name FASTA-name' for contig names.")
    ] = None,
    score: Annotated[
        list[Score] | None,
        typer.Option("--score", "-s", help="Score to compute; repeat for several. Default: llr."),
    ] = None,
    probs: Annotated[
        bool, typer.Option("--probs", help="Also write P(ref) and P(alt) of the masked pass.")
    ] = False,
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            "-w",
            help=f"Bases of context per variant (even, >= 2). Default: the model's training length, "
            f"at most {MAX_DEFAULT_WINDOW}.",
        ),
    ] = None,
    emb_flank: Annotated[
        int, typer.Option("--emb-flank", help="Bases each side of the variant averaged for emb-cos/emb-l2.")
    ] = DEFAULT_FLANK,
    on_ref_mismatch: Annotated[
        OnRefMismatch,
        typer.Option("--on-ref-mismatch", help="REF differs from the FASTA: flag, skip or error."),
    ] = OnRefMismatch.flag,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Output file; stdout when absent or '-'.")
    ] = None,
    output_type: Annotated[
        OutputType | None,
        typer.Option(
            "--output-type", "-O", help="v VCF, z bgzipped VCF, b BCF. Default: from -o's extension."
        ),
    ] = None,
    write_index_: Annotated[
        bool,
        typer.Option(
            "--write-index", "-W", help="Index the output (.tbi; .csi for BCF or contigs > 512 Mbp)."
        ),
    ] = False,
    shard: ShardOpt = None,
    batch_size: BatchSizeOpt = None,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
    threads: ThreadsOpt = 1,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    force: ForceOpt = False,
) -> None:
    """Score every variant of a VCF/BCF with the model; every record is written back, in order."""
    with HtslibMessages() as messages:
        setup_logging(quiet, log_file)
        set_threads(threads)
        if window is not None:
            check_window(window)
        if emb_flank < 0:
            raise UsageError(f"--emb-flank {emb_flank}: must be 0 or more")
        fmt = _output_format(output, output_type, write_index_, force)
        to_stdout = output is None or output == "-"
        shard_range = _shard_range(vcf, parse_shard(shard), messages)
        chrom_names = read_chrom_map(chrom_map) if chrom_map else None
        with Fasta(fasta, chrom_names) as reader_fasta, Fasta(fasta, chrom_names) as window_fasta:
            if shard_range is not None:
                _check_some_contig_known(shard_range[2], reader_fasta, vcf)
            variants = open_vcf(vcf, messages)
            model_obj = open_model(model, revision, device, dtype)
            settings = _settings(
                score, probs, window or default_window(model_obj), emb_flank, on_ref_mismatch
            )
            add_scoring_header(
                variants.header, _info_fields(settings, model_obj), _meta(model_obj, settings), vcf
            )
            _warn_if_header_contigs_unknown(variants.header, reader_fasta, vcf)
            engine = Engine(model_obj, batch_size=batch_size)
            run = _Run(settings, engine, reader_fasta, window_fasta, messages, vcf, quiet)
            if to_stdout:
                writer = VcfWriter("-", fmt, variants.header, run.messages, threads)
                run.score(variants, shard_range, writer)
                writer.close()
            else:
                _score_to_file(run, variants, shard_range, Path(output), fmt, threads, write_index_)
            variants.close()


def default_window(model_obj: object) -> int:
    """The model's training length (made even), at most MAX_DEFAULT_WINDOW; that maximum when unknown."""
    trained = getattr(model_obj, "default_window", None) or MAX_DEFAULT_WINDOW
    return max(2, min(trained, MAX_DEFAULT_WINDOW) // 2 * 2)


def _settings(
    score: list[Score] | None, probs: bool, window: int, flank: int, on_ref_mismatch: OnRefMismatch
) -> Settings:
    scores = tuple(dict.fromkeys(s.value for s in (score or [Score.llr])))
    if flank >= window // 2 and {"emb-cos", "emb-l2"} & set(scores):
        log.warning(
            "--emb-flank %d reaches past the %d bp window: averaging over the whole window", flank, window
        )
    log.info("scores %s, window %d bp", ", ".join(scores + (PROBS if probs else ())), window)
    return Settings(scores, probs, window, flank, on_ref_mismatch.value)


def _output_format(output: str | None, output_type: OutputType | None, with_index: bool, force: bool) -> str:
    """The output format, after checking the output can be written (and indexed) before any work."""
    fmt = output_format(output, output_type.value if output_type else None)
    to_stdout = output is None or output == "-"
    if with_index and (to_stdout or fmt == "v"):
        raise UsageError("--write-index needs -o FILE written bgzipped (-O z) or as BCF (-O b)")
    if not to_stdout:
        check_writable_output(Path(output), force)
    return fmt


def _score_to_file(
    run: _Run,
    variants: pysam.VariantFile,
    shard_range: tuple[int, int, set[str]] | None,
    path: Path,
    fmt: str,
    threads: int,
    with_index: bool,
) -> None:
    """Write under a temporary name (and index it) and rename on success; stale indexes of `path` go."""
    partial_indexes = [index_path(partial_path(path), csi) for csi in (False, True)]
    with atomic_output(path) as temporary, removed_on_error(*partial_indexes):
        writer = VcfWriter(
            str(temporary), fmt, variants.header, run.messages, threads, sorted_check=with_index
        )
        run.score(variants, shard_range, writer)
        writer.close()
        if with_index:
            csi = needs_csi(fmt, list(declared_contigs(variants.header).values()), writer.max_end)
            temporary_index = Path(index_path(temporary, csi))
            write_index(temporary, temporary_index, csi)
    for csi in (False, True):
        Path(index_path(path, csi)).unlink(missing_ok=True)
    if with_index:
        temporary_index.replace(index_path(path, temporary_index.suffix == ".csi"))


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
    ):
        self.settings, self.engine, self.messages = settings, engine, messages
        self.source, self.quiet = source, quiet
        self.reader_fasta, self.window_fasta = reader_fasta, window_fasta
        self.tally = Tally()
        self._stop = threading.Event()
        self._cached_span: tuple[str, int, int] | None = None
        self._cached_ids = np.empty(0, dtype=np.int64)

    def score(
        self, variants: pysam.VariantFile, shard_range: tuple[int, int, set[str]] | None, writer: VcfWriter
    ) -> None:
        """Score and write every record (of the shard); unsharded, fail if no contig was in the FASTA."""
        total = shard_range[1] - shard_range[0] if shard_range else None
        started = time.monotonic()
        with progress_bar(self.quiet, "records") as progress, ThreadPoolExecutor(1) as write_pool:
            if total is None and not progress.disable and self.source != "-":
                total = count_records(self.source, self.messages)[0]  # a bar with a total and an ETA
            task = progress.add_task("score-variants", total=total, rate="-")

            last_log = started

            def written(future: Future) -> None:
                nonlocal last_log
                now = time.monotonic()
                rate = format_rate(self.tally.records, now - started)
                progress.update(task, advance=future.result(), rate=rate)
                if progress.disable and now - last_log >= LOG_EVERY_S:  # no bar: a line now and then
                    log.info("%d records written, %s records/s", self.tally.records, rate)
                    last_log = now

            in_flight: list[Future] = []
            for chunk in read_ahead(self._chunks(variants, shard_range), CHUNKS_AHEAD, "caduceus-vcf-reader", self._stop):
                self._run_engine(chunk.plan)
                in_flight.append(write_pool.submit(self._write_chunk, chunk, writer))
                if len(in_flight) > CHUNKS_AHEAD:
                    written(in_flight.pop(0))
            for future in in_flight:
                written(future)
        if shard_range is None and self.tally.records and not self.tally.matched_contig:
            raise InputError(_no_contig_message(self.source, self.tally.vcf_contigs, self.reader_fasta))
        self._log_summary(time.monotonic() - started)

    def _log_summary(self, elapsed: float) -> None:
        flagged = ", ".join(f"{count} {flag}" for flag, count in sorted(self.tally.flags.items())) or "none"
        log.info(
            "%d records written (%d skipped), %d alleles scored, not scored: %s; %.1f s, %s records/s",
            self.tally.records,
            self.tally.skipped,
            self.tally.scored,
            flagged,
            elapsed,
            format_rate(self.tally.records, elapsed),
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
            chunk.records.append((record, contig, alleles))
            for allele in alleles:
                if isinstance(allele, Snv):
                    chunk.plan.add(contig, allele.pos0, allele.alt)
            if len(chunk.records) == CHUNK_RECORDS:
                self.messages.relay_warnings(f"{input_name(self.source)}: ")
                yield chunk
                chunk = self._new_chunk()
        self.messages.relay_warnings(f"{input_name(self.source)}: ")
        if chunk.records:
            yield chunk

    def _new_chunk(self) -> Chunk:
        s = self.settings
        return Chunk([], ScorePlan(s.scores, s.probs, s.window, s.flank))

    def _alleles(
        self, record: pysam.VariantRecord, contig: str | None, number: int
    ) -> list[Snv | str] | None:
        """Classify the record's ALTs; None when the record is skipped (--on-ref-mismatch skip)."""
        self.tally.vcf_contigs.add(record.contig)
        fasta_ref = None
        if contig is not None:
            self.tally.matched_contig = True
            fasta_ref = self.reader_fasta.fetch(contig, record.start, record.start + len(record.ref))
        alleles = classify_alleles(record.ref, record.alts or (), fasta_ref, record.start)
        if alleles and alleles[0] == "ref_mismatch" and self.settings.on_ref_mismatch != "flag":
            if self.settings.on_ref_mismatch == "error":
                raise InputError(
                    f"{input_name(self.source)}: record {number} at {record.contig}:{record.pos}: "
                    f"REF {record.ref} differs from the FASTA ({fasta_ref}) "
                    "(--on-ref-mismatch error; use flag or skip to go on)"
                )
            self.tally.skipped += 1
            return None
        return alleles

    # calling thread -----------------------------------------------------------------------

    def _run_engine(self, plan: ScorePlan) -> None:
        for jobs, output in ((plan.logit_jobs, "logits"), (plan.embed_jobs, "embed")):
            if jobs:
                for key, rows in self.engine.map(self._windows(plan, jobs), output=output, rc="auto"):
                    plan.keep(key, rows)

    def _windows(self, plan: ScorePlan, jobs: Iterable[tuple]) -> Iterator[Window]:
        """Windows built as the engine asks for them (in its read-ahead thread), sharing reference reads."""
        for key in jobs:
            ids, rows = plan.window_for(key, self._reference_ids(plan.window_span(key)))
            yield Window(ids=ids, key=key, rows=rows)

    def _reference_ids(self, span: tuple[str, int, int]) -> np.ndarray:
        # A position's masked, reference and alternative windows come one after another: read once.
        if span != self._cached_span:
            contig, start, end = span
            sequence = self.window_fasta.fetch(contig, start, end)
            self._cached_ids = tokenize(
                sequence, where=f"{self.window_fasta.path}:{contig}:{start + 1}-{end}"
            )
            self._cached_span = span
        return self._cached_ids

    # writer thread ------------------------------------------------------------------------

    def _write_chunk(self, chunk: Chunk, writer: VcfWriter) -> int:
        for record, contig, alleles in chunk.records:
            per_allele = [
                chunk.plan.allele_scores(contig, a.pos0, a.ref, a.alt) if isinstance(a, Snv) else a
                for a in alleles
            ]
            _set_info(record, per_allele, self.settings)
            writer.write(record)
            self.tally.records += 1
            for value in per_allele:
                if isinstance(value, str):
                    self.tally.flags[value] += 1
                else:
                    self.tally.scored += 1
        return len(chunk.records)


def _set_info(
    record: pysam.VariantRecord, per_allele: list[dict[str, float] | str], settings: Settings
) -> None:
    """Per-ALT values ('.' where not scored) and CADUCEUS_FLAG where any allele was not scored."""
    if not per_allele:
        return
    names = list(settings.scores) + (list(PROBS) if settings.probs else [])
    for name in names:
        record.info[INFO_KEYS[name]] = tuple(None if isinstance(v, str) else v[name] for v in per_allele)
    flags = tuple(v if isinstance(v, str) else "." for v in per_allele)
    if any(flag != "." for flag in flags):
        record.info[FLAG_KEY] = flags
    elif FLAG_KEY in record.info:
        del record.info[FLAG_KEY]


def _shard_range(
    path: str, shard: tuple[int, int] | None, messages: HtslibMessages
) -> tuple[int, int, set[str]] | None:
    """Records [first, last) of this shard and the contigs of the whole file, from a counting pass.

    Shards are contiguous runs of records of near-equal count, so the shard outputs concatenated
    in order are the single run's output. Counting needs a second read of the input: a file,
    not stdin.
    """
    if shard is None:
        return None
    if path == "-":
        raise UsageError("--shard needs the VCF as a file (its records are counted first), not stdin")
    index, count = shard
    total, contigs = count_records(path, messages)
    return index * total // count, (index + 1) * total // count, contigs


def _check_some_contig_known(contigs: set[str], fasta: Fasta, source: str) -> None:
    if contigs and not any(fasta.resolve(name) for name in contigs):
        raise InputError(_no_contig_message(source, contigs, fasta))


def _no_contig_message(source: str, vcf_contigs: set[str], fasta: Fasta) -> str:
    return (
        f"{input_name(source)}: no record is on a contig of {fasta.path}: VCF contigs "
        f"{name_sample(sorted(vcf_contigs))}; FASTA contigs {name_sample(list(fasta.contigs))} "
        "(wrong reference? --chrom-map maps names)"
    )


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


def _model_text(model_obj: object) -> str:
    provenance = getattr(model_obj, "provenance", {})
    return f"{provenance.get('source')} (revision {provenance.get('revision')}, sha256 {str(provenance.get('sha256'))[:12]})"


def _rc_text(model_obj: object) -> str:
    if getattr(model_obj, "variant", "ph") == "ps":
        return "RC-conjoined in one pass (PS model, reverse-complement equivariant)"
    return "RC-conjoined (PH model: mean of the forward pass and the reverse-complement pass mapped back)"


def _info_fields(settings: Settings, model_obj: object) -> list[InfoField]:
    """Declarations whose descriptions say how each number was computed."""
    w, model, rc = settings.window, _model_text(model_obj), _rc_text(model_obj)
    # flank_rows clips the flank to the window: say what was averaged, not what was asked for
    span = "the whole window" if settings.flank >= w // 2 else f"{settings.flank} bp each side of it"
    masked = f"the variant base replaced by [MASK] in the centre (index {w // 2}) of a {w} bp window"
    per_score = {
        "llr": f"Caduceus masked log-likelihood ratio logit(ALT) - logit(REF) = log P(ALT)/P(REF) "
        f"with {masked}; negative: the model finds ALT less likely",
        "llr-unmasked": "Caduceus unmasked log-likelihood ratio logit(ALT) - logit(REF) read from one pass "
        f"over the reference in a grid tile of {w} bp whose central half holds the variant",
        "emb-cos": "Caduceus cosine distance (1 - cosine) between mean embeddings of the REF and ALT "
        f"{w} bp windows centred on the variant, averaged over {span}",
        "emb-l2": "Caduceus L2 distance between mean embeddings of the REF and ALT "
        f"{w} bp windows centred on the variant, averaged over {span}",
        "p-ref": f"Caduceus P(REF), softmax over A C G T logits with {masked}",
        "p-alt": f"Caduceus P(ALT), softmax over A C G T logits with {masked}",
    }
    names = list(settings.scores) + (list(PROBS) if settings.probs else [])
    fields = [InfoField(INFO_KEYS[n], "Float", f"{per_score[n]}; model {model}; {rc}") for n in names]
    reasons = ", ".join(f"{flag} ({meaning})" for flag, meaning in FLAGS.items())
    fields.append(InfoField(FLAG_KEY, "String", f"Why the Caduceus scores of an ALT are missing: {reasons}"))
    return fields


def _meta(model_obj: object, settings: Settings) -> dict[str, str]:
    provenance = getattr(model_obj, "provenance", {})
    model = ";".join(f"{key}={provenance.get(key)}" for key in ("source", "revision", "sha256"))
    return {
        "caduceus_version": __version__,
        "caduceus_command": command_line(),
        "caduceus_model": f"{model};variant={getattr(model_obj, 'variant', '?')};window={settings.window}",
    }
