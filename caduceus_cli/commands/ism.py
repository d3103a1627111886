"""`caduceus ism`: in-silico saturation mutagenesis of a region, as a table and optionally a figure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caduceus_cli.commands.inputs import chrom_map_names, open_reference
from caduceus_cli.commands.options import (
    INPUT,
    OUTPUT,
    WINDOWS,
    ChromMapOpt,
    FastaArg,
    ForceOpt,
    VariantIndexOpt,
    VariantWindowOpt,
    choices,
)
from caduceus_cli.commands.resolve import check_variant_window, variant_window
from caduceus_cli.commands.runtime import Runtime, runtime_options
from caduceus_cli.errors import UsageError
from caduceus_cli.io.outputs import check_writable_output, claimed
from caduceus_cli.io.regions import parse_region
from caduceus_cli.pipelines.ism import ISM_MAX_BASES, ISM_MODES, IsmJob, check_ism_region
from caduceus_cli.plots import matplotlib_package, plot_format

Mode = choices("Mode", ISM_MODES)


@runtime_options
def ism(
    fasta: FastaArg,
    *,
    region: Annotated[
        list[str],  # a list, so that a second -r is refused rather than silently used in place of the first
        typer.Option(
            "--region", "-r", metavar="chr:start-end", help=f"Region, 1-based inclusive, at most {ISM_MAX_BASES:,} bp.",
            rich_help_panel=INPUT,
        ),
    ],
    chrom_map: ChromMapOpt = None,
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode", metavar="MODE", help="unmasked: one pass over the reference; masked: one window per base.",
            rich_help_panel=WINDOWS,
        ),
    ] = Mode["unmasked"],
    window: VariantWindowOpt = None,
    variant_index: VariantIndexOpt = None,
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Table (TSV; gzipped if it ends in .gz), '-' for stdout.",
            rich_help_panel=OUTPUT,
        ),
    ],
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", metavar="FILE", help="Also draw the figure (logo over LLR heatmap): .png or .svg.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    force: ForceOpt = False,
    runtime: Runtime,
) -> None:
    """Score every single-base change of a region (in-silico saturation mutagenesis) into a table."""
    if len(region) > 1:
        given = ", ".join(region)
        raise UsageError(f"-r given {len(region)} times ({given}): ism scores one region; run it once per region")
    check_variant_window(window, variant_index)
    table_path = None if output == "-" else Path(output)
    outputs = [path for path in (table_path, plot) if path is not None]
    for path in outputs:
        check_writable_output(path, force)
    if plot is not None:
        plot_format(plot)
        matplotlib_package()  # before the model runs, not after the table is computed
    window = variant_window(runtime.trained_window(), window, variant_index)
    # claimed before the model runs: a second run on these outputs refuses at once
    with claimed(*outputs), open_reference(fasta, chrom_map_names(chrom_map)) as reference:
        where = parse_region(region[0], reference)
        check_ism_region(where.chrom, where.start, where.end)
        model = runtime.load_model()
        job = IsmJob(
            region=where, window=window, mode=mode.value, variant_index=variant_index, table=table_path, plot=plot
        )
        job.run(runtime.engine(model), reference, runtime.quiet)
