"""Random access to a reference FASTA, plain or bgzip-compressed, without loading it.

One code path for both kinds of file: htslib's faidx through `pysam.FastaFile` (pyfaidx would
need Biopython for bgzip). The index (`.fai`, plus `.gzi` for bgzip) is built next to the FASTA
when missing, after checks that turn the usual mistakes into one-line errors.

Contigs longer than 2,147,483,647 bp (2^31 - 1; some axolotl, conifer and lily chromosomes) are
refused when the FASTA is opened, naming the contig: htslib's faidx is 64-bit, but pysam reports
such a contig's length as 2,147,483,647 and will not fetch past it, so its far end would not be
read at all. The length is read from the `.fai` itself, where samtools writes it in full.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pysam

from caduceus_cli.errors import InputError, OutputError
from caduceus_cli.io.contigs import ContigMatcher
from caduceus_cli.io.htslib import HtslibMessages, compression
from caduceus_cli.io.inputs import check_input
from caduceus_cli.io.outputs import committed

_SCAN_CHUNK = 8 << 20  # bytes read at a time when scanning headers: bounded memory on any genome
_SNIFF_BYTES = 64 << 10
_NOT_TEXT = re.compile(rb"[^\t\n\r\x20-\x7e]")  # htslib's indexer skips such bytes without a word
MAX_CONTIG_LENGTH = 2**31 - 1  # the longest contig pysam reads (its lengths and positions are int32)


class Fasta:
    """An indexed FASTA: contig names and lengths, and windows of sequence by coordinate.

    `Fasta(path, chrom_map=None)` opens `path` (plain or bgzip), creating the `.fai` (and `.gzi`)
    when missing. Coordinates are 0-based half-open. `resolve` maps input contig names to FASTA
    names (see `ContigMatcher`). Not for concurrent use: the htslib handle has one file position,
    so use a `Fasta` from one thread at a time (opening it in one thread and reading it in a
    reader thread is fine). Use as a context manager or call `close()`.
    """

    def __init__(self, path: str | os.PathLike[str], chrom_map: dict[str, str] | None = None):
        self.path = os.fspath(path)
        self._handle = _open_indexed(self.path)
        self.contigs: dict[str, int] = dict(zip(self._handle.references, self._handle.lengths, strict=True))
        if not any(self.contigs.values()):
            self._handle.close()
            raise InputError(f"{self.path}: FASTA holds no sequence")
        self._matcher = ContigMatcher(list(self.contigs), chrom_map)

    def resolve(self, name: str) -> str | None:
        """The FASTA contig meant by an input contig name, or None if there is none."""
        return self._matcher.resolve(name)

    def fetch(self, contig: str, start: int, end: int) -> str:
        """Bases [start, end) of FASTA contig `contig`, case as in the file (soft-masking kept).

        Positions outside the contig read as 'N', so windows centred near a contig end keep
        their length.
        """
        if end < start:
            raise ValueError(f"fetch end {end} before start {start}")
        length = self.contigs[contig]
        inner_start, inner_end = max(start, 0), min(end, length)
        inner = self._handle.fetch(contig, inner_start, inner_end) if inner_start < inner_end else ""
        left = min(max(-start, 0), end - start)
        return "N" * left + inner + "N" * (end - start - left - len(inner))

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Fasta:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _open_indexed(path: str) -> pysam.FastaFile:
    """Check the file, build its index if needed, and open it with htslib."""
    check_input(path, "FASTA file", "a FASTA is read through its index (.fai)")
    try:
        bgzipped = _is_bgzipped(path)
        _check_starts_like_fasta(path, bgzipped)
        index_paths = [path + ".fai"] + ([path + ".gzi"] if bgzipped else [])
        if not all(os.path.exists(index) for index in index_paths):
            _build_index(path, index_paths, bgzipped)
        _check_index(path, path + ".fai")
        return pysam.FastaFile(path)
    except (OSError, EOFError, ValueError) as error:  # unreadable, truncated bgzip, corrupt index
        raise InputError(f"{path}: cannot read FASTA or its index ({error})") from None


def _is_bgzipped(path: str) -> bool:
    """True for BGZF; an error for plain gzip, which htslib cannot seek in."""
    kind = compression(path)
    if kind == "gzip":
        raise InputError(
            f"{path}: compressed with gzip, not bgzip; recompress it (gunzip -c {path} | bgzip > out.fa.gz) "
            "or decompress it"
        )
    return kind == "bgzf"


def _open_bytes(path: str, bgzipped: bool) -> BinaryIO:
    return gzip.open(path, "rb") if bgzipped else open(path, "rb")


def _check_starts_like_fasta(path: str, bgzipped: bool) -> None:
    with _open_bytes(path, bgzipped) as handle:
        head = handle.read(_SNIFF_BYTES).lstrip()
    if not head:
        raise InputError(f"{path}: FASTA file is empty")
    if not head.startswith(b">"):
        raise InputError(f"{path}: not a FASTA file (first line does not start with '>')")


def _check_index(path: str, fai: str) -> None:
    """Contig names are unique (an index made elsewhere may not say so) and no contig is longer than
    pysam reads (module docstring)."""
    seen: set[str] = set()
    with open(fai, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.split("\t", 2)
            name = fields[0]
            if name in seen:
                raise InputError(f"{fai}:{lineno}: duplicate contig name '{name}'")
            seen.add(name)
            length = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
            if length > MAX_CONTIG_LENGTH:
                raise InputError(
                    f"{path}: contig {name} is {length:,} bp; caduceus reads contigs up to "
                    f"{MAX_CONTIG_LENGTH:,} bp (pysam's limit); split it into parts no longer than that"
                )


def _build_index(path: str, index_paths: list[str], bgzipped: bool) -> None:
    """Write the `.fai` (and `.gzi`) beside the FASTA, each committed under a unique temporary name.

    The header scan comes first because htslib keeps the first of two same-named contigs with
    only a warning. Unique temporary names and renames mean two jobs started at once on the same
    genome (shards) never read a half-written index.
    """
    _check_headers(path, bgzipped)
    _check_plain_text(path, bgzipped)
    # whoever may read the FASTA may read its index (temporary files start owner-only)
    mode = stat.S_IMODE(os.stat(path).st_mode) & 0o666
    with contextlib.ExitStack() as stack:
        try:
            temporary = [stack.enter_context(committed(Path(index), unique=True, mode=mode)) for index in index_paths]
        except OutputError:  # no temporary file can be made there
            folder = os.path.dirname(os.path.abspath(path))
            raise InputError(
                f"{path}: index {index_paths[0]} is missing and {folder} is not writable; run samtools faidx "
                f"{path} as a user who can write there, or copy the FASTA to a writable folder"
            ) from None
        options = ["--fai-idx", str(temporary[0])] + (["--gzi-idx", str(temporary[1])] if bgzipped else [])
        with HtslibMessages() as messages:
            try:
                pysam.faidx(path, *options)
            except pysam.SamtoolsError:
                reason = messages.reason("malformed FASTA (lines within a sequence must have equal lengths)")
                raise InputError(f"{path}: cannot index FASTA: {reason}") from None


def _check_headers(path: str, bgzipped: bool) -> None:
    """Duplicate or empty contig names are errors naming the line."""
    first_seen: dict[bytes, int] = {}
    with _open_bytes(path, bgzipped) as handle:
        for lineno, header in _header_lines(handle):
            fields = header.split()
            if not fields:
                raise InputError(f"{path}:{lineno}: FASTA header without a contig name")
            name = fields[0]
            if name in first_seen:
                raise InputError(
                    f"{path}:{lineno}: duplicate contig name '{name.decode(errors='replace')}' "
                    f"(first at line {first_seen[name]})"
                )
            first_seen[name] = lineno


def _check_plain_text(path: str, bgzipped: bool) -> None:
    """A byte that is not printable text (NUL, 0xFF, ...) is an error naming its contig, line and offset.

    htslib's indexer skips such bytes, so `>a` then NUL, 0xFF, 0xFE, `ACGT` would read as `ACGT`.
    """
    offset, lineno = 0, 1
    with _open_bytes(path, bgzipped) as handle:
        while chunk := handle.read(_SCAN_CHUNK):
            bad = _NOT_TEXT.search(chunk)
            if bad is None:
                offset += len(chunk)
                lineno += chunk.count(b"\n")
                continue
            lineno += chunk.count(b"\n", 0, bad.start())
            byte, offset = chunk[bad.start()], offset + bad.start()
            break
        else:
            return
    with _open_bytes(path, bgzipped) as handle:
        headers = [header for number, header in _header_lines(handle) if number <= lineno]
    contig = headers[-1].split()[0].decode(errors="replace") if headers and headers[-1].split() else "?"
    raise InputError(
        f"{path}:{lineno}: contig '{contig}': byte 0x{byte:02x} at file offset {offset} is not text; "
        "a FASTA holds printable letters only"
    )


def _header_lines(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, text after '>') of every header line, reading in bounded chunks.

    Sequence lines can be a whole chromosome long, so only complete lines up to the last newline
    of each chunk are scanned; a partial header is carried to the next chunk, a partial sequence
    line is replaced by one placeholder byte (not '>' and not a newline).
    """
    lineno, carry = 1, b""
    while True:
        chunk = handle.read(_SCAN_CHUNK)
        buf = carry + chunk
        cut = buf.rfind(b"\n") + 1 if chunk else len(buf)
        counted = 0
        pos = 0 if buf.startswith(b">") else _next_header(buf, 0)
        while 0 <= pos < cut:
            lineno += buf.count(b"\n", counted, pos)
            counted = pos
            line_end = buf.find(b"\n", pos)
            yield lineno, buf[pos + 1 : line_end if line_end >= 0 else len(buf)]
            pos = _next_header(buf, pos + 1)
        lineno += buf.count(b"\n", counted, cut)
        if not chunk:
            return
        rest = buf[cut:]
        carry = rest if rest.startswith(b">") else (b"x" if rest else b"")


def _next_header(buf: bytes, start: int) -> int:
    newline = buf.find(b"\n>", start)
    return newline + 1 if newline >= 0 else -1
