"""`caduceus score-variants`: zero-shot variant-effect scores for every record of a VCF/BCF (`pipelines.variants`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli.commands.inputs import chrom_map_names, open_reference
from caduceus_cli.commands.options import (
    INPUT,
    OUTPUT,
    SCORING,
    ChromMapOpt,
    EmbFlankOpt,
    ForceOpt,
    ShardOpt,
    VariantIndexOpt,
    VariantScoreOpt,
    VariantWindowOpt,
    choices,
)
from caduceus_cli.commands.resolve import (
    check_emb_flank,
    check_variant_window,
    command_line,
    parse_shard,
    scores_asked,
    variant_window,
)
from caduceus_cli.commands.runtime import Runtime, runtime_options
from caduceus_cli.errors import UsageError
from caduceus_cli.io.backgrounds import read_background
from caduceus_cli.io.inputs import is_stream
from caduceus_cli.io.outputs import check_writable_output, claimed
from caduceus_cli.io.tables import is_table_name
from caduceus_cli.io.vcf import FORMATS, check_vcf_input, output_format
from caduceus_cli.pipelines.variants import RESUMABLE, TABLE, ScoreJob
from caduceus_cli.scoring.settings import DEFAULT_FLANK, DEFAULT_SCORES, ON_REF_MISMATCH, PROBS, Settings

log = logging.getLogger("caduceus")


OnRefMismatch = choices("OnRefMismatch", ON_REF_MISMATCH)
OutputType = choices("OutputType", (*FORMATS, TABLE))


@runtime_options
def score_variants(
    vcf: Annotated[
        str, typer.Argument(metavar="VCF", help="VCF, VCF.gz or BCF to score; '-' (the default) reads stdin.")
    ] = "-",
    *,
    fasta: Annotated[
        Path,
        typer.Option(
            "--fasta", metavar="FILE", help="Reference FASTA (plain or bgzip), required.", rich_help_panel=INPUT
        ),
    ],
    chrom_map: ChromMapOpt = None,
    on_ref_mismatch: Annotated[
        OnRefMismatch,
        typer.Option(
            "--on-ref-mismatch", metavar="ACTION", help="REF differs from the FASTA: flag, skip or error.",
            rich_help_panel=INPUT,
        ),
    ] = OnRefMismatch["flag"],
    shard: ShardOpt = None,
    score: VariantScoreOpt = None,
    probs: Annotated[
        bool,
        typer.Option("--probs", help="Also write P(REF) and P(ALT) of the masked pass.", rich_help_panel=SCORING),
    ] = False,
    emb_flank: EmbFlankOpt = DEFAULT_FLANK,
    background_path: Annotated[
        Path | None,
        typer.Option(
            "--background",
            metavar="FILE",
            help="Background of `caduceus calibrate` (same model, window and scores): add each score's "
            "percentile among its variants of the same context.",
            rich_help_panel=SCORING,
        ),
    ] = None,
    window: VariantWindowOpt = None,
    variant_index: VariantIndexOpt = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Output file; stdout when absent or '-'.", rich_help_panel=OUTPUT
        ),
    ] = None,
    output_type: Annotated[
        OutputType | None,
        typer.Option(
            "--output-type",
            "-O",
            metavar="TYPE",
            help="v VCF, z bgzipped VCF, b BCF, t table (TSV, gzipped if -o ends in .gz). "
            "Default: from -o's extension.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    write_index_: Annotated[
        bool,
        typer.Option(
            "--write-index", "-W", help="Index the output (.tbi; .csi for BCF or contigs > 512 Mbp).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue an interrupted run from its partial file (VCF output, -O v or z).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    force: ForceOpt = False,
    runtime: Runtime,
) -> None:
    """Score every variant of a VCF/BCF with the model; every record is written back, in order."""
    check_variant_window(window, variant_index)
    check_emb_flank(emb_flank)
    fmt = _output_format(output, output_type, write_index_, force)
    path = None if output is None or output == "-" else Path(output)
    if resume and (path is None or fmt not in RESUMABLE):
        raise UsageError("--resume continues a VCF file (-o FILE, -O v or z): BCF, tables and stdout are not kept")
    shard_part = parse_shard(shard)
    if resume and is_stream(vcf):
        raise UsageError("--resume needs the VCF as a file (the saved records are checked against it), not stdin or a pipe")
    check_vcf_input(vcf)
    if shard_part is not None and is_stream(vcf):
        raise UsageError("--shard needs the VCF as a file (its records are counted first), not stdin or a pipe")
    background = read_background(background_path) if background_path else None
    window = variant_window(runtime.trained_window(), window, variant_index)
    scores = scores_asked(score, DEFAULT_SCORES)
    settings = _settings(scores, probs, window, variant_index, emb_flank, on_ref_mismatch)
    names = chrom_map_names(chrom_map)
    # claimed before the model loads: a second run on this output refuses at once
    with (
        claimed(*([] if path is None else [path])),
        open_reference(fasta, names) as reader_fasta,
        open_reference(fasta, names) as window_fasta,
    ):
        model = runtime.load_model()
        log.info("scores %s, window %s bp", ", ".join(settings.scores + (PROBS if probs else ())), f"{window:,}")
        job = ScoreJob(
            vcf=vcf, settings=settings, output=path, fmt=fmt, write_index=write_index_, shard=shard_part,
            background=background, threads=runtime.threads or 1, resume=resume, command_line=command_line(),
        )
        job.run(runtime.engine(model), reader_fasta, window_fasta, runtime.quiet)


def _settings(
    scores: tuple[str, ...],
    probs: bool,
    window: int,
    variant_index: int | None,
    flank: int,
    on_ref_mismatch: OnRefMismatch,
) -> Settings:
    settings = Settings(
        scores=scores, probs=probs, window=window, flank=flank, on_ref_mismatch=on_ref_mismatch.value,
        variant_index=variant_index,
    )  # fmt: skip
    if flank >= window // 2 and settings.embeddings:
        log.warning(
            "--emb-flank %d reaches past the %d bp window: averaging over the whole window", flank, window
        )
    return settings


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
