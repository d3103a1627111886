"""`caduceus ism`: in-silico saturation mutagenesis of a region, as a table and optionally a figure."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli.commands.common import (
    BatchSizeOpt,
    ChromMapOpt,
    DeviceOpt,
    DtypeOpt,
    FastaArg,
    ForceOpt,
    LogFileOpt,
    ModelOpt,
    QuietOpt,
    RevisionOpt,
    ThreadsOpt,
    VariantIndexOpt,
    check_variant_window,
    choices,
    open_model,
    open_reference,
    set_threads,
    variant_window,
)
from caduceus_cli.engine import Engine
from caduceus_cli.io.outputs import STDOUT, check_writable_output, claimed, write_errors
from caduceus_cli.io.regions import parse_region
from caduceus_cli.io.tables import write_rows, write_table
from caduceus_cli.pipelines.ism import ISM_MODES, saturation_mutagenesis
from caduceus_cli.plots import plot_format, plot_ism
from caduceus_cli.scoring import (
    ISM_COLUMNS,
    ISM_MAX_BASES,
    MAX_DEFAULT_WINDOW,
    IsmTable,
    check_ism_region,
)
from caduceus_cli.terminal import setup_logging

log = logging.getLogger("caduceus")

Mode = choices("Mode", ISM_MODES)


def ism(
    fasta: FastaArg,
    region: Annotated[
        str,
        typer.Option(
            "--region", "-r", help=f"Region chr:start-end, 1-based inclusive, at most {ISM_MAX_BASES:,} bp."
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Table (TSV; gzipped if it ends in .gz), '-' for stdout.")
    ],
    mode: Annotated[
        Mode,
        typer.Option("--mode", help="unmasked: one pass over the reference; masked: one window per base."),
    ] = Mode["unmasked"],
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw the figure (logo over LLR heatmap): .png or .svg."),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            "-w",
            help=f"Bases of context (even, >= 2), as score-variants. Default: the model's training length, "
            f"at most {MAX_DEFAULT_WINDOW}.",
        ),
    ] = None,
    variant_index: VariantIndexOpt = None,
    chrom_map: ChromMapOpt = None,
    batch_size: BatchSizeOpt = None,
    force: ForceOpt = False,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Score every single-base change of a region (in-silico saturation mutagenesis) into a table."""
    setup_logging(quiet, log_file)
    set_threads(threads)
    check_variant_window(window, variant_index)
    table_path = None if output == "-" else Path(output)
    for path in (table_path, plot):
        if path is not None:
            check_writable_output(path, force)
    if plot is not None:
        plot_format(plot)
    # claimed before the model runs: a second run on these outputs refuses at once
    with claimed(*(path for path in (table_path, plot) if path is not None)):
        with open_reference(fasta, chrom_map) as reference:
            where = parse_region(region, reference)
            check_ism_region(where.chrom, where.start, where.end)
            model_obj = open_model(model, revision, device, dtype)
            window = variant_window(model_obj, window, variant_index)
            engine = Engine(model_obj, batch_size=batch_size)
            table = saturation_mutagenesis(engine, reference, where, window, mode.value, quiet, variant_index)
        _write(table, table_path, plot)


def _write(table: IsmTable, path: Path | None, plot: Path | None) -> None:
    """The figure, then the table (stdout when `path` is None); a failed table takes the figure with it."""
    if plot is not None:
        plot_ism(table, plot)
    try:
        if path is None:
            with write_errors(STDOUT):
                write_rows(sys.stdout, ISM_COLUMNS, table.rows())
                sys.stdout.flush()
        else:
            write_table(path, ISM_COLUMNS, table.rows())
    except BaseException:
        if plot is not None:
            plot.unlink(missing_ok=True)
        raise
    log.info("wrote %s", " and ".join(str(p) for p in (path or "stdout", plot) if p is not None))
