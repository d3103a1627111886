"""`caduceus score-variants`: zero-shot variant-effect scores for every record of a VCF/BCF.

Options, output naming and the header's declarations here; the scoring itself is
`pipelines.variants.score_vcf`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pysam
import typer

from caduceus_cli import __version__
from caduceus_cli.calibration import Background, percentile_fields, run_identity
from caduceus_cli.commands.common import (
    BatchSizeOpt,
    ChromMapOpt,
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    LogFileOpt,
    ModelOpt,
    QuietOpt,
    RevisionOpt,
    ShardOpt,
    ThreadsOpt,
    VariantIndexOpt,
    check_variant_window,
    choices,
    command_line,
    open_model,
    parse_shard,
    set_threads,
    variant_window,
)
from caduceus_cli.engine import Engine
from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io.backgrounds import read_background
from caduceus_cli.io.contigs import name_sample, read_chrom_map
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.outputs import STDOUT, check_writable_output, claimed, committed, write_errors
from caduceus_cli.io.tables import is_table_name, table_output
from caduceus_cli.io.vcf import (
    FORMATS,
    INDEX_SUFFIXES,
    HtslibMessages,
    VcfWriter,
    add_scoring_header,
    count_records,
    declared_contigs,
    index_path,
    input_name,
    needs_csi,
    open_vcf,
    output_format,
    write_index,
)
from caduceus_cli.pipelines.variants import COMMAND_KEY, ScoreTable, no_contig_message, score_vcf
from caduceus_cli.scoring import (
    DEFAULT_FLANK,
    DEFAULT_SCORES,
    MAX_DEFAULT_WINDOW,
    ON_REF_MISMATCH,
    PROBS,
    SCORES,
    Settings,
    info_fields,
)
from caduceus_cli.terminal import setup_logging

log = logging.getLogger("caduceus")


Score = choices("Score", SCORES)
OnRefMismatch = choices("OnRefMismatch", ON_REF_MISMATCH)
TABLE = "t"  # -O t: the scores as a tab-separated table, one row per ALT allele
OutputType = choices("OutputType", (*FORMATS, TABLE))


def score_variants(
    fasta: Annotated[Path, typer.Option("--fasta", help="Reference FASTA (plain or bgzip), required.")],
    vcf: Annotated[
        str, typer.Argument(help="VCF, VCF.gz or BCF to score; '-' (the default) reads stdin.")
    ] = "-",
    chrom_map: ChromMapOpt = None,
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
    variant_index: VariantIndexOpt = None,
    emb_flank: Annotated[
        int, typer.Option("--emb-flank", help="Bases each side of the variant averaged for emb-cos/emb-l2.")
    ] = DEFAULT_FLANK,
    on_ref_mismatch: Annotated[
        OnRefMismatch,
        typer.Option("--on-ref-mismatch", help="REF differs from the FASTA: flag, skip or error."),
    ] = OnRefMismatch["flag"],
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Output file; stdout when absent or '-'.")
    ] = None,
    output_type: Annotated[
        OutputType | None,
        typer.Option(
            "--output-type",
            "-O",
            help="v VCF, z bgzipped VCF, b BCF, t table (TSV, gzipped if -o ends in .gz). "
            "Default: from -o's extension.",
        ),
    ] = None,
    background_path: Annotated[
        Path | None,
        typer.Option(
            "--background",
            help="Background of `caduceus calibrate` (same model, window and scores): add each score's "
            "percentile among its variants of the same context.",
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
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    force: ForceOpt = False,
) -> None:
    """Score every variant of a VCF/BCF with the model; every record is written back, in order."""
    with HtslibMessages() as messages:
        setup_logging(quiet, log_file)
        threads = set_threads(threads)
        check_variant_window(window, variant_index)
        if emb_flank < 0:
            raise UsageError(f"--emb-flank {emb_flank}: must be 0 or more")
        fmt = _output_format(output, output_type, write_index_, force)
        to_stdout = output is None or output == "-"
        shard_range = _shard_range(vcf, parse_shard(shard), messages)
        chrom_names = read_chrom_map(chrom_map) if chrom_map else None
        background = read_background(background_path) if background_path else None
        with (
            claimed(*([] if to_stdout else [Path(output)])),
            Fasta(fasta, chrom_names) as reader_fasta,
            Fasta(fasta, chrom_names) as window_fasta,
        ):
            if shard_range is not None:
                _check_some_contig_known(shard_range[2], reader_fasta, vcf)
            variants = open_vcf(vcf, messages)
            model_obj = open_model(model, revision, device, dtype)
            window = variant_window(model_obj, window, variant_index)
            settings = _settings(score, probs, window, variant_index, emb_flank, on_ref_mismatch)
            if background is not None:
                background.check_matches(run_identity(model_obj, settings), settings.scores)
                log.info("percentiles among %s", _background_text(background))
            if fmt != TABLE:
                fields = info_fields(settings, model_obj)
                fields += percentile_fields(background, settings.scores) if background is not None else []
                add_scoring_header(variants.header, fields, _meta(model_obj, settings, background), vcf)
            _warn_if_header_contigs_unknown(variants.header, reader_fasta, vcf)
            engine = Engine(model_obj, batch_size=batch_size)

            def run(writer: VcfWriter | ScoreTable) -> None:
                score_vcf(
                    engine, variants, writer, settings, reader_fasta, window_fasta, messages, vcf, shard_range, quiet,
                    background,
                )  # fmt: skip

            if fmt == TABLE:
                _score_to_table(run, settings, background, None if to_stdout else Path(output))
            elif to_stdout:
                with write_errors(STDOUT):
                    writer = VcfWriter("-", fmt, variants.header, messages, threads)
                    run(writer)
                    writer.close()
            else:
                _score_to_file(run, variants.header, messages, Path(output), fmt, threads, write_index_)
            variants.close()


def _settings(
    score: list[Score] | None,
    probs: bool,
    window: int,
    variant_index: int | None,
    flank: int,
    on_ref_mismatch: OnRefMismatch,
) -> Settings:
    scores = tuple(dict.fromkeys(s.value for s in score)) if score else DEFAULT_SCORES
    if flank >= window // 2 and {"emb-cos", "emb-l2"} & set(scores):
        log.warning(
            "--emb-flank %d reaches past the %d bp window: averaging over the whole window", flank, window
        )
    log.info("scores %s, window %d bp", ", ".join(scores + (PROBS if probs else ())), window)
    return Settings(scores, probs, window, flank, on_ref_mismatch.value, variant_index)


def _output_format(output: str | None, output_type: OutputType | None, with_index: bool, force: bool) -> str:
    """The output format, after checking the output can be written (and indexed) before any work."""
    to_stdout = output is None or output == "-"
    if output_type == OutputType[TABLE] or (output_type is None and not to_stdout and is_table_name(output)):
        fmt = TABLE
    else:
        fmt = output_format(output, output_type.value if output_type else None)
    if with_index and fmt == TABLE:
        raise UsageError("--write-index indexes VCF or BCF output; a table (-O t) has no index")
    if with_index and (to_stdout or fmt == "v"):
        raise UsageError("--write-index needs -o FILE written bgzipped (-O z) or as BCF (-O b)")
    if not to_stdout:
        check_writable_output(Path(output), force)
    return fmt


def _score_to_table(
    run: Callable[[ScoreTable], None], settings: Settings, background: Background | None, path: Path | None
) -> None:
    """The scores as a table on stdout (`path` None) or in `path` (written under a temporary name)."""
    if path is None:
        with write_errors(STDOUT):
            run(ScoreTable(sys.stdout, settings, background))
            sys.stdout.flush()
        return
    with table_output(path) as stream:
        run(ScoreTable(stream, settings, background))


def _score_to_file(
    run: Callable[[VcfWriter], None],
    header: pysam.VariantHeader,
    messages: HtslibMessages,
    path: Path,
    fmt: str,
    threads: int,
    with_index: bool,
) -> None:
    """Write (and index) under a temporary name, renamed on success; a stale index of `path` goes."""
    with committed(path, companions=INDEX_SUFFIXES) as temporary:
        writer = VcfWriter(str(temporary), fmt, header, messages, threads, sorted_check=with_index)
        try:
            run(writer)
        except BaseException:
            writer.abandon()
            raise
        writer.close()
        if with_index:
            csi = needs_csi(fmt, list(declared_contigs(header).values()), writer.max_end)
            write_index(temporary, index_path(temporary, csi), csi)


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


def _meta(model_obj: object, settings: Settings, background: Background | None) -> dict[str, str]:
    provenance = getattr(model_obj, "provenance", {})
    model = ";".join(f"{key}={provenance.get(key)}" for key in ("source", "revision", "sha256"))
    meta = {
        "caduceus_version": __version__,
        COMMAND_KEY: command_line(),
        "caduceus_model": f"{model};variant={getattr(model_obj, 'variant', '?')};window={settings.window}"
        + ("" if settings.variant_index is None else f";variant_index={settings.variant_index}"),
    }
    if background is not None:
        about = ("genome", "genome_sha256", "regions_sha256", "seed", "sites_used", "max_indel")
        meta["caduceus_background"] = f"file={background.path};variants={background.variants};" + ";".join(
            f"{key}={background.meta.get(key)}" for key in about
        )
    return meta


def _background_text(background: Background) -> str:
    meta = background.meta
    return (
        f"{background.path}: {background.variants} variants at {meta.get('sites_used')} sites of "
        f"{meta.get('genome')} (seed {meta.get('seed')}, {meta.get('regions')})"
    )
