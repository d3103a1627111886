"""Tab-separated score tables (`caduceus_cli.io.tables`)."""

from __future__ import annotations

import csv
import gzip
import io
import math

import numpy as np
import pytest

from caduceus_cli.io.tables import format_cell, write_rows, write_table
from caduceus_cli.pipelines.ism import ISM_COLUMNS, ism_table
from caduceus_cli.tokens import CADUCEUS

COLUMNS = ("chrom", "pos", "id", "ref", "alt", "llr", "logit_ref")
ROWS = [
    ("chr1", 10, "rs1", "A", "G", -1.2345678901234, np.float32(3.5)),
    ("chr1", 12, ".", "C", "T", float("nan"), np.float32(-0.1)),
]


def test_cells_are_shortest_float32_text_and_nan_is_NaN():
    assert format_cell(-1.2345678901234) == "-1.2345679"
    assert np.float32(format_cell(-1.2345678901234)) == np.float32(-1.2345678901234)
    assert format_cell(np.float32(0.1)) == "0.1"
    assert format_cell(float("nan")) == "NaN"
    assert format_cell(np.float32("nan")) == "NaN"
    assert format_cell(1e-7) == "1e-07"
    assert format_cell(42) == "42"
    assert format_cell(np.int64(7)) == "7"
    assert format_cell("rs1") == "rs1"


def test_a_table_is_a_header_line_and_one_tab_separated_line_per_row(tmp_path):
    path = tmp_path / "scores.tsv"
    assert write_table(path, COLUMNS, ROWS) == 2
    assert path.read_text().splitlines() == [
        "chrom\tpos\tid\tref\talt\tllr\tlogit_ref",
        "chr1\t10\trs1\tA\tG\t-1.2345679\t3.5",
        "chr1\t12\t.\tC\tT\tNaN\t-0.1",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["scores.tsv"]


def test_gz_suffix_compresses_and_the_same_table_gives_the_same_bytes(tmp_path):
    for name in ("a.tsv.gz", "b.tsv.gz", "plain.tsv"):
        write_table(tmp_path / name, COLUMNS, ROWS)
    assert gzip.decompress((tmp_path / "a.tsv.gz").read_bytes()) == (tmp_path / "plain.tsv").read_bytes()
    assert (tmp_path / "a.tsv.gz").read_bytes() == (tmp_path / "b.tsv.gz").read_bytes()


def test_the_csv_module_reads_every_number_back(tmp_path):
    write_table(tmp_path / "scores.tsv", COLUMNS, ROWS)
    with open(tmp_path / "scores.tsv", newline="") as text:
        rows = list(csv.DictReader(text, delimiter="\t"))
    assert [int(row["pos"]) for row in rows] == [10, 12]
    assert np.float32(float(rows[0]["llr"])) == np.float32(-1.2345678901234)
    assert math.isnan(float(rows[1]["llr"]))


def test_pandas_reads_the_table_without_options(tmp_path):
    pandas = pytest.importorskip("pandas")
    write_table(tmp_path / "scores.tsv.gz", COLUMNS, ROWS)
    frame = pandas.read_csv(tmp_path / "scores.tsv.gz", sep="\t")
    assert list(frame.columns) == list(COLUMNS)
    assert frame["pos"].tolist() == [10, 12]
    assert frame["llr"].isna().tolist() == [False, True]


def test_an_ism_table_reads_back_as_the_values_it_holds(tmp_path):
    logits = np.random.default_rng(4).normal(size=(5, 4)).astype(np.float32)
    table = ism_table(logits, CADUCEUS.columns(CADUCEUS.encode("ACNGT")), "chr3", 1000)
    write_table(tmp_path / "ism.tsv", ISM_COLUMNS, table.rows())
    with open(tmp_path / "ism.tsv", newline="") as text:
        read = list(csv.DictReader(text, delimiter="\t"))
    rows = list(table.rows())
    assert len(read) == len(rows) == 12
    for got, row in zip(read, rows, strict=True):
        assert (got["chrom"], int(got["pos"]), got["ref"], got["alt"]) == row[:4]
        for column, value in zip(ISM_COLUMNS[4:], row[4:], strict=True):
            assert np.float32(got[column]) == np.float32(value)


def test_a_row_of_the_wrong_width_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="table row 2 has 2 cells for 7 columns"):
        write_table(tmp_path / "scores.tsv", COLUMNS, [ROWS[0], ("chr1", 3)])
    assert list(tmp_path.iterdir()) == []


def test_rows_can_go_to_any_text_stream():
    stream = io.StringIO()
    assert write_rows(stream, ("a", "b"), []) == 0
    assert stream.getvalue() == "a\tb\n"
