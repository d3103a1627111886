"""The background file of `caduceus calibrate`: a gzipped table of sampled variants and their scores.

    #caduceus_background=1                 format version; how `caduceus merge` knows the file
    #caduceus_version=...
    #caduceus_command=caduceus calibrate ...
    #model_source=... #model_sha256=... #window=... and the rest of the header (`calibrate` command)
    #caduceus_shard=2/4                    a shard of `calibrate --shard` only
    chrom  pos  ref  alt  class  context  llr ...
    Chr1   1234 C    T    snv    A[C>T]G  -1.5

Header lines are `#key=value`; then one tab-separated row per variant, in site order, positions
1-based, REF and ALT as a VCF writes them (a padding base before an insertion or deletion), scores
as in `score-variants -O t` (float32 text, `NaN` where a score does not apply). pandas reads it
with `pd.read_csv(path, sep="\\t", comment="#")`. Written through `table_output` (gzip without a
timestamp, renamed into place when complete), so the same run gives the same bytes, and the shards
of one run, joined in --shard order (`pipelines.merge.backgrounds`), give the single run's bytes
apart from the command line.
"""

from __future__ import annotations

import contextlib
import gzip
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from caduceus_cli.calibration import Background
from caduceus_cli.errors import InputError
from caduceus_cli.io.tables import format_row
from caduceus_cli.windows import SHARD_KEY

FORMAT_KEY, FORMAT_VERSION = "caduceus_background", "1"
COMMAND_KEY = "caduceus_command"
EARLIER_SHARD_KEY = "shard"  # what versions before the one shard key (windows.SHARD_KEY) wrote
COLUMNS = ("chrom", "pos", "ref", "alt", "class", "context")


def score_column(score: str) -> str:
    """A score's column name, `-` written `_` as in `score-variants -O t`."""
    return score.replace("-", "_")


def column_scores(columns: Sequence[str]) -> list[str]:
    """The scores of a background's columns (those after COLUMNS), as `score_column` undoes."""
    return [name.replace("_", "-") for name in columns[len(COLUMNS) :]]


class BackgroundWriter:
    """Writes the header (`meta`, in order, after the format line), the column names, then `write` rows."""

    def __init__(self, stream: TextIO, meta: Mapping[str, str], scores: Sequence[str]):
        self._stream, self._scores = stream, tuple(scores)
        stream.write(f"#{FORMAT_KEY}={FORMAT_VERSION}\n")
        for key, value in meta.items():
            stream.write(f"#{key}={' '.join(str(value).splitlines())}\n")
        stream.write(format_row((*COLUMNS, *map(score_column, self._scores))))

    def write(
        self, chrom: str, pos0: int, ref: str, alt: str, kind: str, context: str | None, values: Mapping[str, float]
    ) -> None:
        """One variant: 0-based position, REF and ALT as in a VCF, class, context ('.' for none), scores."""
        cells = (values.get(score, math.nan) for score in self._scores)
        self._stream.write(format_row((chrom, pos0 + 1, ref, alt, kind, context or ".", *cells)))


def is_background(path: Path) -> bool:
    """Whether `path` is a background (or a shard of one): gzip whose first line is the format line."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as text:
            return text.readline().startswith(f"#{FORMAT_KEY}=")
    except (OSError, EOFError, UnicodeDecodeError):
        return False


def read_background(path: Path) -> Background:
    """The background in `path`, its scores grouped by context; a shard or an unreadable file is an InputError."""
    with _lines(path) as lines:
        meta, columns = _header(path, lines)
        if SHARD_KEY in meta:
            raise InputError(
                f"{path}: shard {meta[SHARD_KEY]} of a background; join the shards first (caduceus merge)"
            )
        scores = column_scores(columns)
        contexts: list[str] = []
        values: list[list[float]] = []
        for number, line in enumerate(lines, start=len(meta) + 2):
            cells = line.rstrip("\n").split("\t")
            if len(cells) != len(columns):
                raise InputError(f"{path}: line {number} has {len(cells)} columns, the header {len(columns)}")
            contexts.append(cells[5])
            try:
                values.append([float(cell) for cell in cells[len(COLUMNS) :]])
            except ValueError:
                raise InputError(f"{path}: line {number}: a score is not a number") from None
    table = np.array(values, dtype=np.float32).reshape(len(values), len(scores))
    return Background.from_rows(str(path), meta, contexts, {s: table[:, i] for i, s in enumerate(scores)})


def read_header(path: Path) -> tuple[dict[str, str], list[str]]:
    """The `#key=value` lines of a background (after the format line), and its column names."""
    with _lines(path) as lines:
        return _header(path, lines)


@contextlib.contextmanager
def background_rows(path: Path) -> Iterator[Iterator[str]]:
    """The row lines of a background, after its header, as written (newline included)."""
    with _lines(path) as lines:
        _header(path, lines)
        yield lines


@contextlib.contextmanager
def _lines(path: Path) -> Iterator[Iterator[str]]:
    """The text lines of a gzipped background; unreadable or not gzip: an InputError naming the file."""
    try:
        handle = gzip.open(path, "rt", encoding="utf-8", newline="\n")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        raise InputError(f"{path}: background file not found") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None

    def checked() -> Iterator[str]:
        try:
            yield from handle
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: not a readable gzipped background ({error})") from None

    with handle:
        yield checked()


def _header(path: Path, lines: Iterator[str]) -> tuple[dict[str, str], list[str]]:
    """The `#key=value` lines after the format line, and the column names; the iterator is left at the rows."""
    first = next(lines, "")
    if not first.startswith(f"#{FORMAT_KEY}="):
        raise InputError(f"{path}: not a background made by caduceus calibrate (no #{FORMAT_KEY} line first)")
    version = first.rstrip("\n").partition("=")[2]
    if version != FORMAT_VERSION:
        raise InputError(f"{path}: background format {version}; this caduceus reads format {FORMAT_VERSION}")
    meta: dict[str, str] = {}
    for line in lines:
        if not line.startswith("#"):
            columns = line.rstrip("\n").split("\t")
            if tuple(columns[: len(COLUMNS)]) != COLUMNS:
                raise InputError(f"{path}: the column line does not start {' '.join(COLUMNS)}")
            return meta, columns
        key, _, value = line[1:].rstrip("\n").partition("=")
        if key == EARLIER_SHARD_KEY:  # read as a whole background, a shard would give wrong percentiles
            raise InputError(
                f"{path}: shard {value} of a background written by an earlier caduceus (#{key}=); "
                "rerun that calibrate --shard with this version, then caduceus merge"
            )
        meta[key] = value
    raise InputError(f"{path}: the background ends inside its header")
