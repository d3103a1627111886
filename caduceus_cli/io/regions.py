"""Regions to process: from a BED file, from samtools-style `-r` strings, or every contig.

Every region is checked against the FASTA when it is read (contig known, inside the contig),
so that a bad line fails the command before any model work, naming the file and line.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from caduceus_cli.errors import InputError
from caduceus_cli.io.contigs import name_sample
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.inputs import check_input

_SKIPPED_PREFIXES = ("#", "track", "browser")
_STRANDS = {"+": "+", "-": "-", ".": "+"}
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Region:
    """A stretch of one FASTA contig: 0-based half-open [start, end), `chrom` a FASTA contig name.

    `strand` is '+' or '-'; a '-' region is processed as its reverse complement.
    """

    chrom: str
    start: int
    end: int
    name: str = ""
    strand: str = "+"


def region_label(chrom: str, start: int, end: int, contig_length: int) -> str:
    """Default region name: the contig name for a whole contig, else samtools-style
    `chrom:first-last` (1-based inclusive, so it can be passed back to `-r`)."""
    return chrom if (start, end) == (0, contig_length) else f"{chrom}:{start + 1}-{end}"


def all_contigs(fasta: Fasta) -> list[Region]:
    """One region per contig, in FASTA order; zero-length contigs have nothing to process."""
    return [Region(name, 0, length, name) for name, length in fasta.contigs.items() if length > 0]


def read_bed(path: str | os.PathLike[str], fasta: Fasta) -> list[Region]:
    """Regions of a BED file (BED3 to BED12; plain or gzip; `-` reads stdin), in file order.

    Columns used: chrom, start, end, then optionally name (4th) and strand (6th); the score and
    any later columns are ignored. Lines starting with `#`, `track` or `browser`, and blank
    lines, are skipped. A missing name or `.` becomes `region_label(...)`, e.g. `chr1:101-200`
    or `chr1` for a whole contig; strand `.` or missing means '+'. Contig names are resolved
    through `fasta.resolve` (aliases, chrom map), so `Region.chrom` is the FASTA's name.
    """
    where = "<stdin>" if os.fspath(path) == "-" else os.fspath(path)
    with _open_text(path, where) as handle:
        regions = [
            _bed_region(line, f"{where}:{lineno}", fasta)
            for lineno, line in enumerate(handle, start=1)
            if line.strip() and not line.startswith(_SKIPPED_PREFIXES)
        ]
    if not regions:
        raise InputError(f"{where}: BED file has no regions")
    return regions


def parse_region(text: str, fasta: Fasta) -> Region:
    """A samtools-style region: `chr1`, `chr1:1000` (to the contig end), `chr1:1000-` or
    `chr1:1,000,001-1,131,072` (1-based inclusive; commas allowed).

    As in samtools, the whole text is first tried as a contig name, so contigs whose names
    contain ':' work; otherwise the range is what follows the last ':'.
    """
    where = f"region '{text}'"
    whole = _resolve(text, fasta, where)
    if whole is not None:
        return Region(whole, 0, fasta.contigs[whole], whole)
    contig_text, colon, range_text = text.rpartition(":")
    chrom = _known_contig(contig_text if colon else text, fasta, where)
    length = fasta.contigs[chrom]
    first_text, dash, last_text = range_text.replace(",", "").partition("-")
    first = _integer(first_text, "start", where)
    last = _integer(last_text, "end", where) if dash and last_text else length
    if first < 1:
        raise InputError(f"{where}: start {first} is before 1 (regions are 1-based)")
    if last < first:
        raise InputError(f"{where}: end {last} is before start {first}")
    _check_within_contig(last, chrom, length, where)
    return Region(chrom, first - 1, last, region_label(chrom, first - 1, last, length))


def input_regions(fasta: Fasta, bed: str | os.PathLike[str] | None, texts: Sequence[str]) -> list[Region]:
    """The regions of a command's -R BED and -r options, in input order (the BED file's first); every
    contig when neither is given."""
    regions = read_bed(bed, fasta) if bed is not None else []
    regions += [parse_region(text, fasta) for text in texts]
    return regions or all_contigs(fasta)


@contextlib.contextmanager
def _open_text(path: str | os.PathLike[str], where: str) -> Iterator[TextIO]:
    if where == "<stdin>":
        yield sys.stdin
        return
    check_input(path, "BED file")
    try:
        # opened once: a pipe (`-R <(sort peaks.bed)`) gives its bytes once, so they are peeked, not read
        with open(path, "rb") as raw:
            gzipped = raw.peek(2)[:2] == b"\x1f\x8b"
            text = gzip.open(raw, "rt", encoding="utf-8") if gzipped else io.TextIOWrapper(raw, encoding="utf-8")  # noqa: SIM115 (the with below closes it)
            with text as handle:
                yield handle
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError):
        raise InputError(f"{where}: not a text BED file") from None


def _bed_region(line: str, where: str, fasta: Fasta) -> Region:
    line = line.rstrip("\r\n")
    # BED is tab-separated (names may contain spaces); accept space-separated files too.
    fields = line.split("\t") if "\t" in line else line.split()
    if len(fields) < 3:
        raise InputError(f"{where}: expected at least 3 columns (chrom start end), found {len(fields)}")
    chrom = _known_contig(fields[0], fasta, where)
    start, end = _integer(fields[1], "start", where), _integer(fields[2], "end", where)
    if start < 0:
        raise InputError(f"{where}: negative start {start}")
    if start >= end:
        raise InputError(f"{where}: start {start} is not before end {end} (BED is 0-based half-open)")
    length = fasta.contigs[chrom]
    _check_within_contig(end, chrom, length, where)
    name = fields[3] if len(fields) > 3 and fields[3] not in ("", ".") else ""
    strand_text = fields[5] if len(fields) > 5 else "."
    if strand_text not in _STRANDS:
        raise InputError(f"{where}: strand '{strand_text}' is not '+', '-' or '.'")
    return Region(chrom, start, end, name or region_label(chrom, start, end, length), _STRANDS[strand_text])


def _resolve(name: str, fasta: Fasta, where: str) -> str | None:
    try:
        return fasta.resolve(name)
    except InputError as error:  # several FASTA contigs match
        raise InputError(f"{where}: {error}") from None


def _known_contig(name: str, fasta: Fasta, where: str) -> str:
    chrom = _resolve(name, fasta, where)
    if chrom is None:
        raise InputError(
            f"{where}: contig '{name}' is not in {fasta.path} "
            f"(it has {name_sample(list(fasta.contigs))}); --chrom-map can rename contigs"
        )
    return chrom


def _integer(text: str, what: str, where: str) -> int:
    # Stricter than int(), which also takes ' 12', '1_000' and non-ASCII digits.
    if not _INTEGER.fullmatch(text):
        raise InputError(f"{where}: {what} '{text}' is not an integer")
    return int(text)


def _check_within_contig(end: int, chrom: str, length: int, where: str) -> None:
    if end > length:
        raise InputError(f"{where}: end {end} is past the end of {chrom} (length {length})")
