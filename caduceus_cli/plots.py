"""Figures of model scores (`caduceus ism --plot`), drawn with matplotlib without a display.

The ISM figure has two panels over the same genomic x axis (1-based positions):
- a sequence logo of the reference: each base drawn as its letter, as tall as its importance,
  max(0, -mean LLR of its 3 alternatives) in nats: how much the model loses, on average, when
  the base changes. Bases the model would rather see changed get no height (0), N bases no letter.
- a heatmap of every LLR, rows A, C, G, T, the reference's own cell grey; a diverging
  colour map centred at 0 (red: the change is less likely than the reference, blue: more likely).

Figures are built on a bare matplotlib Figure (no pyplot, no global backend): PNG goes through
Agg, SVG through matplotlib's SVG writer, chosen by the output suffix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from caduceus_cli.errors import InputError
from caduceus_cli.extras import require
from caduceus_cli.io.outputs import committed
from caduceus_cli.scoring.scores import mean_alternative_llr
from caduceus_cli.tokens import ACGT

if TYPE_CHECKING:
    from caduceus_cli.pipelines.ism import IsmTable

PLOT_FORMATS = {".png": "png", ".svg": "svg"}
DPI = 150
BASE_COLOURS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}
COLOUR_BAR_LABEL = "LLR (nats): log P(alt) - log P(ref)"


def matplotlib_package() -> Any:
    """The matplotlib package, or a one-line error saying how to install it."""
    return require("matplotlib", "--plot", "or leave --plot out and plot the table yourself")


def plot_format(path: Path) -> str:
    """'png' or 'svg' from the suffix of `path`; anything else is an error, before any work is done."""
    fmt = PLOT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: a plot is written as .png or .svg")
    return fmt


def importance(table: IsmTable) -> np.ndarray:
    """(L,) height of each reference base in the logo: max(0, -mean LLR of its 3 alternatives); 0 at N."""
    return np.maximum(-mean_alternative_llr(table.llrs), 0.0)


def figure_size(length: int) -> tuple[float, float]:
    """(width, height) in inches: wider with the region, so letters stay apart up to ~250 bp, capped."""
    return min(max(6.0, 0.12 * length + 2.0), 40.0), 5.0


def _draw_logo(axes: Any, table: IsmTable, heights: np.ndarray) -> None:
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    font = FontProperties(family="DejaVu Sans", weight="bold")
    glyphs = {base: TextPath((0, 0), base, size=1, prop=font) for base in ACGT}
    for index, (base, height) in enumerate(zip(table.reference, heights.tolist(), strict=True)):
        if base not in ACGT or height <= 0:
            continue
        glyph = glyphs[base]
        box = glyph.get_extents()
        x = table.start + index + 1
        to_cell = (
            Affine2D()
            .translate(-box.x0, -box.y0)
            .scale(0.9 / box.width, height / box.height)
            .translate(x - 0.45, 0)
        )
        axes.add_patch(PathPatch(to_cell.transform_path(glyph), color=BASE_COLOURS[base], linewidth=0))
    axes.set_ylim(0, max(float(heights.max(initial=0.0)), 1e-3) * 1.05)
    axes.set_ylabel("importance (nats)\nmax(0, -mean LLR)")


def _draw_heatmap(axes: Any, table: IsmTable) -> Any:
    from matplotlib import colormaps

    limit = max(float(np.nanmax(np.abs(table.llrs), initial=0.0)), 1e-3)
    colours = colormaps["RdBu"].with_extremes(bad="#b0b0b0")
    image = axes.imshow(
        np.ma.masked_invalid(table.llrs.T),
        aspect="auto",
        interpolation="nearest",
        cmap=colours,
        vmin=-limit,
        vmax=limit,
        extent=(table.start + 0.5, table.end + 0.5, len(ACGT) - 0.5, -0.5),
    )
    axes.set_yticks(range(len(ACGT)), list(ACGT))
    axes.set_ylabel("alternative base")
    axes.set_xlabel(f"{table.chrom} position (1-based)")
    return image


def plot_ism(table: IsmTable, path: Path) -> None:
    """Draw the ISM figure of `table` (logo over heatmap) to `path`, a .png or .svg, written atomically."""
    fmt = plot_format(path)
    matplotlib = matplotlib_package()
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    figure = Figure(figsize=figure_size(len(table.reference)), dpi=DPI, layout="constrained")
    ratios = (1.0, 1.2)
    logo, heatmap = figure.subplots(2, 1, sharex=True, height_ratios=ratios)
    _draw_logo(logo, table, importance(table))
    image = _draw_heatmap(heatmap, table)
    # taken from both panels so their x axes stay aligned; as tall as the heatmap, beside it
    shrink = ratios[1] / sum(ratios)
    figure.colorbar(
        image, ax=[logo, heatmap], label=COLOUR_BAR_LABEL, shrink=shrink, anchor=(0.0, 0.0), pad=0.01
    )
    heatmap.xaxis.set_major_locator(MaxNLocator(nbins=10, steps=[1, 2, 5, 10], integer=True))
    heatmap.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{int(x):,}"))
    heatmap.set_xlim(table.start + 0.5, table.end + 0.5)
    figure.suptitle(f"In-silico saturation mutagenesis of {table.chrom}:{table.start + 1}-{table.end}")
    # a fixed salt for the SVG's element ids and no date: the same table gives the same file
    with committed(path) as temporary, matplotlib.rc_context({"svg.hashsalt": "caduceus"}):
        figure.savefig(temporary, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
