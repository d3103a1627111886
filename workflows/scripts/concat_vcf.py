#!/usr/bin/env python
"""Join the shard outputs of `caduceus score-variants --shard I/N` into one bgzipped, indexed VCF.

`caduceus score-variants --shard I/N` splits the records of a VCF into N contiguous runs, so the
shard outputs, concatenated in shard order, are the single run's records. This is what
`bcftools concat --naive` would do, with checks that matter for a scatter/gather:

- shards are put in --shard order (read from each file's `##caduceus_command` header line),
  whatever order they are given in, and a missing or repeated shard is an error;
- every header must equal the first shard's apart from `##caduceus_command`, so shards scored
  with another model, window or score set are refused;
- records are copied as text, byte for byte; the result is checked to be sorted before it is
  indexed (.tbi, or .csi with --csi for contigs over 512 Mbp).

The output is written under a temporary name and renamed on success. Needs only pysam (for
bgzip and the index), so it runs wherever `caduceus` is installed.

    python concat_vcf.py -o scored.vcf.gz scored.1-of-3.vcf.gz scored.2-of-3.vcf.gz scored.3-of-3.vcf.gz
"""

from __future__ import annotations

import argparse
import gzip
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pysam

COMMAND_KEY = "##caduceus_command="


class ConcatError(Exception):
    """A problem with the shard files, reported as one line."""


def open_text(path: Path):
    """Plain or (b)gzipped VCF as text; BCF is refused (its records cannot be copied as text)."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    with opener(path, "rb") as handle:
        if handle.read(3) == b"BCF":
            raise ConcatError(f"{path}: BCF shards cannot be joined as text; write shards with -O z")
    return opener(path, "rt", encoding="utf-8", newline="")


def read_header(path: Path) -> list[str]:
    header = []
    with open_text(path) as lines:
        for line in lines:
            header.append(line)
            if line.startswith("#CHROM"):
                return header
    raise ConcatError(f"{path}: no #CHROM line; not a VCF")


def shard_of(path: Path, header: list[str]) -> tuple[int, int]:
    """(I, N) of the `--shard I/N` in the file's ##caduceus_command line."""
    for line in header:
        if not line.startswith(COMMAND_KEY):
            continue
        words = shlex.split(line[len(COMMAND_KEY) :])
        for word, following in zip(words, [*words[1:], ""], strict=True):
            if word == "--shard":
                value = following
            elif word.startswith("--shard="):
                value = word.removeprefix("--shard=")
            else:
                continue
            index, slash, count = value.partition("/")
            if slash and index.isdigit() and count.isdigit():
                return int(index), int(count)
    raise ConcatError(f"{path}: its ##caduceus_command has no --shard I/N; not a score-variants shard")


def in_shard_order(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """The shards sorted by their index, and the first shard's header; refuses incomplete sets."""
    headers = {path: read_header(path) for path in paths}
    shards = {path: shard_of(path, header) for path, header in headers.items()}
    counts = {count for _, count in shards.values()}
    if len(counts) != 1:
        raise ConcatError(f"shards of different splits (N = {sorted(counts)}) cannot be joined")
    count = counts.pop()
    by_index: dict[int, Path] = {}
    for path, (index, _) in shards.items():
        if index in by_index:
            raise ConcatError(f"{path}: shard {index}/{count} given twice (also {by_index[index]})")
        by_index[index] = path
    missing = sorted(set(range(1, count + 1)) - by_index.keys())
    if missing:
        raise ConcatError(f"shard {missing[0]}/{count} is missing from the files to join")
    ordered = [by_index[index] for index in range(1, count + 1)]
    first = ordered[0]
    for path in ordered[1:]:
        check_same_header(first, headers[first], path, headers[path])
    return ordered, headers[first]


def check_same_header(first: Path, expected: list[str], path: Path, header: list[str]) -> None:
    def kept(lines: list[str]) -> list[str]:
        return [line for line in lines if not line.startswith(COMMAND_KEY)]

    for want, got in zip(kept(expected), kept(header), strict=False):
        if want != got:
            raise ConcatError(f"{path}: header line {got.strip()!r} differs from {first} ({want.strip()!r})")
    if len(kept(expected)) != len(kept(header)):
        raise ConcatError(f"{path}: header has a different number of lines than {first}")


def with_concat_line(header: list[str], ordered: list[Path]) -> list[str]:
    """The first shard's header (its ##caduceus_command names shard 1) plus a line saying how it was joined."""
    line = f"##caduceus_concat={len(ordered)} shards joined in order: {' '.join(map(str, ordered))}\n"
    return [*header[:-1], line, header[-1]]


def records(path: Path) -> Iterator[str]:
    with open_text(path) as lines:
        for line in lines:
            if not line.startswith("#"):
                yield line


class SortCheck:
    """Records must come contig by contig with non-decreasing positions for the index to work."""

    def __init__(self) -> None:
        self.finished: set[str] = set()
        self.contig: str | None = None
        self.position = 0

    def check(self, line: str, path: Path) -> None:
        contig, position = line.split("\t", 2)[:2]
        if contig != self.contig:
            if contig in self.finished:
                raise ConcatError(f"{path}: contig {contig} appears again after others; sort the input VCF")
            if self.contig is not None:
                self.finished.add(self.contig)
            self.contig, self.position = contig, 0
        if int(position) < self.position:
            raise ConcatError(f"{path}: {contig}:{position} comes after position {self.position}; unsorted")
        self.position = int(position)


def concatenate(paths: list[Path], output: Path, csi: bool) -> int:
    """Write the joined VCF and its index; return the number of records."""
    ordered, header = in_shard_order(paths)
    partial = output.with_name(output.name + ".partial")
    index_suffix = ".csi" if csi else ".tbi"
    partial_index = Path(str(partial) + index_suffix)
    count = 0
    try:
        sort_check = SortCheck()
        with pysam.BGZFile(str(partial), "wb") as out:
            out.write("".join(with_concat_line(header, ordered)).encode())
            for path in ordered:
                for line in records(path):
                    sort_check.check(line, path)
                    out.write(line.encode())
                    count += 1
        pysam.tabix_index(str(partial), preset="vcf", force=True, csi=csi, index=str(partial_index))
        os.replace(partial_index, str(output) + index_suffix)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
        partial_index.unlink(missing_ok=True)
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", nargs="+", type=Path, help="Shard VCFs (.vcf or .vcf.gz), any order.")
    parser.add_argument("-o", "--output", type=Path, required=True, help="Joined .vcf.gz to write.")
    parser.add_argument("--csi", action="store_true", help="Write a .csi index instead of .tbi.")
    args = parser.parse_args(argv)
    try:
        count = concatenate(args.shards, args.output, args.csi)
    except (ConcatError, OSError) as err:
        print(f"concat_vcf: error: {err}", file=sys.stderr)
        return 1
    print(f"concat_vcf: {count} records from {len(args.shards)} shards into {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
