"""Tab-separated tables of scores (`caduceus ism`, `score-variants -O t`), readable by pandas without options.

One header line of column names, then one line per row, tab-separated. Floats are written as the
shortest text that reads back as the same float32 (the model's precision, and the precision of a
bigWig track, so a table value and a track value at the same base compare equal); a missing value
is `NaN`, which pandas, R and Python's float() all read as not-a-number. A name ending in `.gz` is
gzip-compressed (without a timestamp, so the same table gives the same bytes).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from caduceus_cli.io.outputs import committed

TABLE_SUFFIXES = (".tsv", ".tsv.gz")


def format_cell(value: object) -> str:
    """The text of one cell: floats as their shortest float32 text, NaN as `NaN`, anything else as str()."""
    if isinstance(value, float | np.floating):
        return "NaN" if math.isnan(value) else str(np.float32(value))
    return str(value)


def format_row(cells: Sequence[object]) -> str:
    """One line of the table: the cells' texts, tab-separated, with its newline."""
    return "\t".join(map(format_cell, cells)) + "\n"


def write_rows(stream: TextIO, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write the header and every row to a text stream (a file, or stdout); return the number of rows."""
    stream.write(format_row(columns))
    count = 0
    for count, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise ValueError(f"table row {count} has {len(row)} cells for {len(columns)} columns")
        stream.write(format_row(row))
    return count


def is_table_name(name: str) -> bool:
    """Whether an output name asks for a table: it ends in .tsv or .tsv.gz (any case)."""
    return name.lower().endswith(TABLE_SUFFIXES)


@contextlib.contextmanager
def table_output(path: Path) -> Iterator[TextIO]:
    """A text stream into `path` (gzipped if it ends in .gz); the file appears if the block succeeds."""
    with committed(path) as temporary, open(temporary, "wb") as raw:
        # no file name in the gzip header: it would be the temporary one
        binary = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if path.suffix == ".gz" else raw
        with io.TextIOWrapper(binary, encoding="utf-8", newline="\n") as text:
            yield text


def write_table(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write a table to `path` (gzip-compressed if it ends in .gz), which appears only once complete."""
    with table_output(path) as text:
        return write_rows(text, columns, rows)
