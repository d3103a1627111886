"""The ISM figure (`caduceus_cli.plots`): rendered to PNG and SVG, and checked as files."""

from __future__ import annotations

import struct
import sys
import warnings

import numpy as np
import pytest

from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.pipelines.ism import ism_table
from caduceus_cli.plots import COLOUR_BAR_LABEL, DPI, figure_size, importance, plot_ism
from caduceus_cli.scoring.scores import COLUMN
from caduceus_cli.tokens import CADUCEUS

pytest.importorskip("matplotlib")


def _table(reference: str = "ACGTNNACGTTGCA", start: int = 12_345):
    logits = np.random.default_rng(6).normal(size=(len(reference), 4)).astype(np.float32)
    return ism_table(logits, CADUCEUS.columns(CADUCEUS.encode(reference)), "chr4", start)


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_importance_is_minus_the_mean_llr_clipped_at_zero_and_zero_at_n():
    logits = np.zeros((3, 4), dtype=np.float32)
    logits[0, COLUMN["A"]] = 3.0  # every change of this A costs 3 nats
    logits[1, COLUMN["C"]] = 1.0  # the reference C is less likely than its 3 alternatives
    table = ism_table(logits, CADUCEUS.columns(CADUCEUS.encode("ATN")), "chr1", 0)
    np.testing.assert_allclose(importance(table), [3.0, 0.0, 0.0])


@pytest.mark.parametrize("length", [14, 400])
def test_png_has_the_signature_and_the_pixel_size_of_the_figure(tmp_path, length):
    reference = ("ACGTNNACGTTGCA" * 40)[:length]
    path = tmp_path / "ism.png"
    plot_ism(_table(reference), path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    width, height = figure_size(length)
    assert _png_size(data) == (round(width * DPI), round(height * DPI))
    assert [p.name for p in tmp_path.iterdir()] == ["ism.png"]


def test_svg_carries_title_axis_and_colour_bar_labels(tmp_path):
    path = tmp_path / "ism.svg"
    plot_ism(_table(), path)
    text = path.read_text()
    assert text.startswith("<?xml") and "<svg" in text and text.rstrip().endswith("</svg>")
    for label in (COLOUR_BAR_LABEL, "chr4:12346-12359", "chr4 position (1-based)", "12,350"):
        assert label in text  # matplotlib keeps each text as a comment next to its glyphs


def test_the_same_table_gives_the_same_svg(tmp_path):
    plot_ism(_table(), tmp_path / "a.svg")
    plot_ism(_table(), tmp_path / "b.svg")
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


def test_a_region_of_only_n_still_plots_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_ism(_table("NNNN"), tmp_path / "ism.png")
    assert (tmp_path / "ism.png").stat().st_size > 0


def test_another_suffix_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(InputError, match=r"ism.pdf: a plot is written as .png or .svg"):
        plot_ism(_table(), tmp_path / "ism.pdf")
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_a_one_line_error_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match=r"^--plot needs the matplotlib package: pip install matplotlib;"):
        plot_ism(_table(), tmp_path / "ism.png")
    assert list(tmp_path.iterdir()) == []
