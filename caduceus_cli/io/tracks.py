"""Per-base score tracks: bigWig (through pyBigWig) or bgzipped bedGraph, written and read back.

Writers take per-base float32 values, contig by contig in FASTA order and by increasing position
(the order a genome browser and tabix need); a NaN value is a base without a score and becomes a
gap, not an entry. Chromosome sizes and their order come from the caller (the FASTA).

- bigWig: one fixedStep section (span 1, step 1) per NaN-free stretch. Model scores are float32
  and consecutive bases almost never share a value, so bedGraph-style runs cost more: on 100 kbp
  of scores, 510 kB with fixedStep against 775 kB with run entries (both with pyBigWig's 10 zoom
  levels, which browsers use when zoomed out; 351 kB without them). Written in pieces or at once,
  the file is the same.
- bedGraph: one `chrom start end value` line per base (0-based, half-open), the value in the
  shortest text that reads back as the same float32, BGZF-compressed so tabix can index it
  (about 970 kB per 100 kbp). No `track` line: tabix, bedtools and pandas read the file as it is.

Both are written under a temporary name and renamed when complete (`track_writer`).

A write error is an OSError, as `committed` expects. libBigWig needs help there: it crashes on a
write that fails inside `addEntries` (and on a file it cannot create), and a failed close only
prints "[bwClose] ... The output is likely truncated" and returns. So the bigWig writer checks for
room before each write and before closing, creates the file itself first, and reads the closed
file back: a file that does not cover the bases written is a write error.
"""

from __future__ import annotations

import abc
import contextlib
import gzip
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pysam

from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.extras import require
from caduceus_cli.io.outputs import committed, ensure_space

TRACK_FORMATS = ("bigwig", "bedgraph")
ChromSizes = Mapping[str, int]  # contig lengths in FASTA order, as `Fasta.contigs`
Stretch = tuple[str, int, np.ndarray]  # (chrom, 0-based start, per-base float32 values)

# what the merge reads from a shard at a time: bases of a bigWig, characters of a bedGraph (~1M lines)
READ_BASES = 1 << 20
READ_CHARS = 1 << 25
# bigWig bytes per base: at most 4 for the float32 values (fixedStep, compressed), and the zoom levels
# and index written at close add under half of the file (measured: 3.5 and 5.1 per base)
BIGWIG_VALUE_BYTES = 4


def pybigwig() -> Any:
    """The pyBigWig module, or a one-line error saying how to install it."""
    return require("pyBigWig", "bigWig output", "or write bgzipped bedGraph (-o NAME.bedgraph.gz)")


# Names that say a track's format. A bedGraph is written bgzipped (so tabix can index it): its name ends
# in .gz, and a plain .bedgraph or .bg name is refused rather than given compressed bytes.
TRACK_SUFFIXES = {".bw": "bigwig", ".bigwig": "bigwig", ".bedgraph.gz": "bedgraph", ".bg.gz": "bedgraph"}
_PLAIN_BEDGRAPH = (".bedgraph", ".bg")


def track_format(path: Path, fmt: str | None, given_by: str = "--format") -> str:
    """The format of a track written to `path`: what its name says (TRACK_SUFFIXES), which `fmt` (set by
    `given_by`: an option, or the shards merged) may not contradict; else `fmt`; else bedGraph for
    another .gz name, bigWig for any other."""
    name = path.name.lower()
    if name.endswith(_PLAIN_BEDGRAPH):
        raise UsageError(f"-o {path}: bedGraph tracks are written bgzipped (for tabix); name it {path.name}.gz")
    named = next((kind for suffix, kind in TRACK_SUFFIXES.items() if name.endswith(suffix)), None)
    if named is not None and fmt is not None and named != fmt:
        wanted = next(suffix for suffix, kind in TRACK_SUFFIXES.items() if kind == fmt)  # .bw or .bedgraph.gz
        raise UsageError(f"-o {path}: a {named} name for a {fmt} track ({given_by} {fmt}); name it *{wanted}")
    return named or fmt or ("bedgraph" if name.endswith(".gz") else "bigwig")


def _finite_stretches(start: int, values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(start, values) of each NaN-free run of `values`, whose first value is at position `start`."""
    finite = np.concatenate(([False], ~np.isnan(values), [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(finite))
    for begin, end in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        yield start + begin, values[begin:end]


class TrackWriter(abc.ABC):
    """Checks what `add` is given (known contig, inside it, FASTA order, no overlap) and drops NaNs;
    subclasses write the NaN-free stretches to their format."""

    def __init__(self, chrom_sizes: ChromSizes):
        self.chrom_sizes = chrom_sizes
        self._rank = {chrom: rank for rank, chrom in enumerate(chrom_sizes)}
        self._written_to = (0, 0)  # (contig rank, end) of the last value written

    def add(self, chrom: str, start: int, values: np.ndarray) -> None:
        """Write per-base `values` of bases [start, start + len(values)) of `chrom`; NaN leaves a gap."""
        end = start + len(values)
        if chrom not in self._rank:
            raise InputError(f"{chrom}: not a contig of the FASTA the track is written for")
        if start < 0 or end > self.chrom_sizes[chrom]:
            raise InputError(
                f"{chrom}:{start + 1}-{end}: past the end of {chrom} ({self.chrom_sizes[chrom]} bp)"
            )
        if (self._rank[chrom], start) < self._written_to:
            raise InputError(
                f"{chrom}:{start + 1}: track values out of FASTA order or overlapping earlier ones"
            )
        self._written_to = (self._rank[chrom], end)
        for stretch_start, stretch in _finite_stretches(start, np.asarray(values, dtype=np.float32)):
            self._write(chrom, stretch_start, stretch)

    @abc.abstractmethod
    def _write(self, chrom: str, start: int, values: np.ndarray) -> None: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Finish the file; an OSError if it could not be written completely."""

    @abc.abstractmethod
    def abandon(self) -> None:
        """Close the file after a failure, without raising: it is removed, and the failure reported."""


class BigWigWriter(TrackWriter):
    def __init__(self, path: Path, chrom_sizes: ChromSizes):
        super().__init__(chrom_sizes)
        self.path = path
        library = pybigwig()
        path.open("wb").close()  # a clean OSError where libBigWig would crash (a folder gone)
        self._file = library.open(str(path), "w")
        self._bases = 0
        try:
            with self._library_errors():
                self._file.addHeader([(chrom, int(size)) for chrom, size in chrom_sizes.items()])
        except BaseException:
            self.abandon()
            raise

    def _write(self, chrom: str, start: int, values: np.ndarray) -> None:
        ensure_space(self.path, BIGWIG_VALUE_BYTES * len(values))
        with self._library_errors():
            self._file.addEntries(chrom, int(start), values=values, span=1, step=1)
        self._bases += len(values)

    def close(self) -> None:
        ensure_space(self.path, self.path.stat().st_size // 2)  # the zoom levels and index
        self._file.close()
        if _bases_covered(self.path) != self._bases:
            raise OSError("libBigWig could not finish the file (it holds fewer bases than were written)")

    def abandon(self) -> None:
        # Not detached as HDF5 is (outputs.detach): libBigWig reads its values back to build the
        # zoom levels at close. A close that cannot write only prints "[bwClose] ...".
        with contextlib.suppress(Exception):
            self._file.close()

    @contextlib.contextmanager
    def _library_errors(self) -> Iterator[None]:
        """pyBigWig's errors (RuntimeError) as the OSErrors of a failed write."""
        try:
            yield
        except RuntimeError as error:
            raise OSError(f"libBigWig: {error}") from None


def _bases_covered(path: Path) -> int | None:
    """The bases with a value in a closed bigWig, from its header; None if it does not open."""
    try:
        track = pybigwig().open(str(path))
    except RuntimeError:
        return None
    try:
        return int(track.header()["nBasesCovered"])
    finally:
        track.close()


class BedGraphWriter(TrackWriter):
    def __init__(self, path: Path, chrom_sizes: ChromSizes):
        super().__init__(chrom_sizes)
        self._file = pysam.BGZFile(str(path), "wb")

    def _write(self, chrom: str, start: int, values: np.ndarray) -> None:
        texts = values.astype(str).tolist()  # numpy's shortest float32 text that reads back exactly
        lines = (f"{chrom}\t{p}\t{p + 1}\t{text}\n" for p, text in zip(itertools.count(start), texts))
        self._file.write("".join(lines).encode())

    def close(self) -> None:
        self._file.close()

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


_WRITERS = {"bigwig": BigWigWriter, "bedgraph": BedGraphWriter}


@contextlib.contextmanager
def track_writer(path: Path, chrom_sizes: ChromSizes, fmt: str) -> Iterator[TrackWriter]:
    """A writer of format `fmt` (TRACK_FORMATS) whose file appears at `path` only if the block succeeds."""
    with committed(path) as temporary:
        writer = _WRITERS[fmt](temporary, chrom_sizes)
        try:
            yield writer
        except BaseException:
            writer.abandon()
            raise
        writer.close()


def _per_base(chrom: str, starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> Iterator[Stretch]:
    """Intervals [starts, ends) with one value each (sorted, disjoint) as stretches of contiguous bases."""
    if not len(starts):
        return
    lengths = ends - starts
    base_values = np.repeat(values.astype(np.float32), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.repeat(starts, lengths) + offsets
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    for begin, end in itertools.pairwise([0, *breaks.tolist(), len(positions)]):
        yield chrom, int(positions[begin]), base_values[begin:end]


def read_bigwig(path: Path, chrom_sizes: ChromSizes) -> Iterator[Stretch]:
    """The values of a bigWig track as stretches in FASTA order; its contigs must be those of the FASTA."""
    try:
        track = pybigwig().open(str(path))
    except RuntimeError:
        raise InputError(f"{path}: not a readable bigWig file") from None
    try:
        if track.chroms() != dict(chrom_sizes):
            raise InputError(f"{path}: its contigs are not those of the FASTA")
        for chrom, size in chrom_sizes.items():
            for start in range(0, size, READ_BASES):
                end = min(start + READ_BASES, size)
                found = track.intervals(chrom, start, end) or []  # None where there is no value
                intervals = np.array(found, dtype=np.float64).reshape(-1, 3)
                starts, ends = np.clip(intervals[:, :2].astype(np.int64), start, end).T
                yield from _per_base(chrom, starts, ends, intervals[:, 2])
    finally:
        track.close()


def read_bedgraph(path: Path, chrom_sizes: ChromSizes) -> Iterator[Stretch]:
    """The values of a (bgzipped) bedGraph track as stretches, in file order (FASTA order when we wrote it).

    `chrom_sizes` is unused: a bedGraph names no sizes (the writer checks every contig it is given).
    Text is read in blocks of whole lines and split all at once, 4x faster than line by line."""
    with gzip.open(path, "rt") as text:
        rest = ""
        while block := text.read(READ_CHARS):
            lines, rest = _whole_lines(rest + block)
            yield from _bedgraph_stretches(path, lines)
        if rest:  # a last line without its newline
            yield from _bedgraph_stretches(path, rest + "\n")


def _whole_lines(text: str) -> tuple[str, str]:
    """`text` cut after its last newline: (whole lines, the start of the next line)."""
    cut = text.rfind("\n") + 1
    return text[:cut], text[cut:]


def _bedgraph_stretches(path: Path, lines: str) -> Iterator[Stretch]:
    fields = lines.replace("\t", "\n").split("\n")[:-1]
    if not fields:
        return
    if len(fields) % 4:
        raise InputError(f"{path}: not a bedGraph track (4 tab-separated columns a line)")
    chroms = np.array(fields[0::4])
    try:
        starts, ends = np.array(fields[1::4], dtype=np.int64), np.array(fields[2::4], dtype=np.int64)
        values = np.array(list(map(float, fields[3::4])), dtype=np.float32)
    except ValueError:
        raise InputError(f"{path}: not a bedGraph track (a start, end or value is not a number)") from None
    bounds = [0, *(np.flatnonzero(chroms[1:] != chroms[:-1]) + 1).tolist(), len(chroms)]
    for begin, end in itertools.pairwise(bounds):
        yield from _per_base(str(chroms[begin]), starts[begin:end], ends[begin:end], values[begin:end])


def read_track(path: Path, chrom_sizes: ChromSizes, fmt: str) -> Iterator[Stretch]:
    """The NaN-free stretches of a bigWig or bedGraph track, in file order."""
    return {"bigwig": read_bigwig, "bedgraph": read_bedgraph}[fmt](path, chrom_sizes)
