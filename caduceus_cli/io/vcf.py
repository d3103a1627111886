"""VCF / BCF in and out through pysam: streaming reads and scored output (the INFO fields declared: vcf_info.py).

Records are never translated between headers: the score definitions are added to the input
header before the first record is read, and each record is written under that same header.
VCF text is what htslib formats for the record, so every field comes out as it came in, even
tags and contigs the header never declared. BCF goes through a copy of the header; lines that
htslib adds while reading (undeclared tags) are copied to it in the same order, so ids agree
(as `bcftools view` relies on).

htslib reports problems on file descriptor 2, out of Python's reach. `io.htslib.HtslibMessages` sends
them to a temporary file instead, so they come back as one-line errors and deduplicated log
warnings, and nothing but data ever reaches stdout.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pysam
import pysam.bcftools
from pysam.libcbgzf import BGZFile

from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io.htslib import HtslibMessages, compression
from caduceus_cli.io.inputs import check_input, is_stream
from caduceus_cli.io.outputs import committed
from caduceus_cli.io.vcf_info import InfoField

log = logging.getLogger("caduceus")

FORMATS = {"v": "w", "z": "wz", "b": "wb"}
INDEX_SUFFIXES = (".tbi", ".csi")  # by csi: False, True
TBI_MAX_POSITION = 1 << 29  # positions a .tbi can hold (512 Mbp); beyond it the index must be CSI
# header lines saying how a scored file was made: the command, and the merge that joined shards
# (a score-variants --shard run also writes its place, under `windows.SHARD_KEY`)
COMMAND_KEY, MERGE_KEY = "caduceus_command", "caduceus_merge"


# ---------------------------------------------------------------------------------------------
# reading


def input_name(path: str) -> str:
    return "stdin" if path == "-" else path


def check_vcf_input(path: str) -> None:
    """A missing input is an InputError before any work ('-' is stdin; a pipe is read as stdin is)."""
    if path != "-":
        check_input(path, "VCF file")


def open_vcf(path: str, messages: HtslibMessages) -> pysam.VariantFile:
    """Open a VCF, bgzipped VCF or BCF ('-' for stdin, or a pipe) for streaming; unreadable input is an
    InputError."""
    check_vcf_input(path)
    try:
        if path != "-" and (is_stream(path) or compression(path) == "gzip"):
            # htslib streams a pipe, and plain gzip (which it cannot seek in), as it does stdin (as bcftools
            # does; sniffing a pipe's first bytes here would take them from htslib); pysam reads a duplicate
            # of the descriptor, so ours can close at once
            with open(path, "rb") as handle:
                return pysam.VariantFile(handle)
        return pysam.VariantFile(path)
    except (OSError, ValueError) as error:
        reason = messages.reason(str(error))
        raise InputError(f"{input_name(path)}: not a readable VCF/BCF ({reason})") from None


def records(vcf: pysam.VariantFile, path: str, messages: HtslibMessages) -> Iterator[pysam.VariantRecord]:
    """The records in file order; a record htslib cannot parse ends the stream with an InputError."""
    number, last = 0, "the header"
    iterator = iter(vcf)
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except (OSError, ValueError) as error:
            reason = messages.reason(str(error))
            raise InputError(f"{input_name(path)}: record {number + 1} (after {last}): {reason}") from None
        number += 1
        last = f"{record.contig}:{record.pos}"
        yield record


def count_records(path: str, messages: HtslibMessages) -> tuple[int, set[str]]:
    """Number of records and the contig names they use, from one pass over a file."""
    vcf = open_vcf(path, messages)
    contigs: set[str] = set()
    count = 0
    with vcf:
        for record in records(vcf, path, messages):
            count += 1
            contigs.add(record.contig)
    return count, contigs


# ---------------------------------------------------------------------------------------------
# header


def add_scoring_header(
    header: pysam.VariantHeader, fields: list[InfoField], meta: dict[str, str], path: str
) -> None:
    """Declare the score fields (Number=A) and provenance lines in the input header, before reading records.

    A field already declared by the input (an earlier run) is an error: htslib cannot change a
    declaration in place, and keeping the old one would describe a different computation.
    """
    already = [field.key for field in fields if field.key in header.info]
    if already:
        listed = ",".join(f"INFO/{key}" for key in already)
        raise InputError(
            f"{input_name(path)}: already declares {listed} (scored before?); "
            f"remove them first, e.g. bcftools annotate -x {listed}"
        )
    for field in fields:
        header.info.add(field.key, "A", field.type, field.description)
    for key, value in meta.items():
        header.add_meta(key, value.replace("\n", " "))


def declared_contigs(header: pysam.VariantHeader) -> dict[str, int | None]:
    return {name: contig.length for name, contig in header.contigs.items()}


# ---------------------------------------------------------------------------------------------
# writing


def output_format(path: str | None, fmt: str | None) -> str:
    """'v', 'z' or 'b': as given by -O, else from the file extension (VCF text on stdout)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"-O {fmt}: use v (VCF), z (bgzipped VCF) or b (BCF)")
        return fmt
    if path is None or path == "-":
        return "v"
    name = path.lower()
    if name.endswith(".bcf"):
        return "b"
    if name.endswith((".gz", ".bgz")):
        return "z"
    return "v"


class VcfWriter:
    """Writes records, in the order given, with the header they were read with.

    VCF and bgzipped VCF are written as the text htslib formats for each record under its own
    header, so every field comes out as it came in. BCF goes through pysam: header lines that
    htslib adds while reading (undeclared contigs or tags) are copied to the output header in
    the same order, so ids agree; pysam also sets INFO/END on records with symbolic ALTs (and
    the header declares END).
    `sorted_check` makes an unsorted input an error at the first out-of-order record (needed
    before indexing). `max_end` is the largest record end seen, for the TBI/CSI choice; `records`
    the records in the file. `append` continues a VCF an interrupted run saved (`take_saved`).
    """

    def __init__(
        self,
        path: str,
        fmt: str,
        header: pysam.VariantHeader,
        messages: HtslibMessages,
        threads: int = 1,
        sorted_check: bool = False,
        append: bool = False,
    ):
        self.path, self.fmt, self._messages = path, fmt, messages
        self._source_header = header
        self._copied = len(header.records)
        self._header_written = append
        mode = "ab" if append else "wb"
        try:
            if fmt == "b":
                # pysam sets INFO/END on every record with a symbolic ALT, declaring it on the fly if
                # needed, too late for a BCF header already written: declare it up front.
                if "END" not in header.info:
                    header.info.add("END", 1, "Integer", "Stop position of the interval")
                self._copied = len(header.records)
                self._file = pysam.VariantFile(path, FORMATS[fmt], header=header, threads=threads)
            elif fmt == "z":
                self._file = BGZFile(path, mode)  # appended BGZF blocks read as one file
            else:
                self._file = open(1 if path == "-" else path, mode, closefd=path != "-")  # noqa: SIM115
        except ValueError as error:  # a header htslib cannot write; an OSError is a write error
            raise InputError(f"{path}: cannot write ({error})") from None
        self._sorted_check = sorted_check
        self._seen_contigs: set[str] = set()
        self._last: tuple[str, int] | None = None
        self.max_end = 0
        self.records = 0
        self.saved: Saved | None = None

    def write(self, record: pysam.VariantRecord) -> None:
        self._take(record)
        if self.fmt == "b":
            self._write_bcf(record)
        else:
            if not self._header_written:
                self._write_text_header()
            self._file.write(str(record).encode())
        self.records += 1

    def take_saved(self, saved: Iterator[pysam.VariantRecord]) -> None:
        """Count the records an interrupted run saved in this file (appended to), checking their order
        as if written now; `saved` says what they were, for the resumed run to skip."""
        last = None
        for record in saved:
            self._take(record)
            self.records += 1
            last = record_key(record)
        self.saved = Saved(self.records, last)

    def _take(self, record: pysam.VariantRecord) -> None:
        if self._sorted_check:
            self._check_order(record)
        self.max_end = max(self.max_end, record.stop)

    def _write_text_header(self) -> None:
        self._file.write(str(self._source_header).encode())
        self._header_written = True

    def _write_bcf(self, record: pysam.VariantRecord) -> None:
        if len(self._source_header.records) != self._copied:
            self._copy_new_header_lines()
        try:
            self._file.write(record)
        except (OSError, ValueError) as error:
            htslib_says = self._messages.relay_warnings()
            if isinstance(error, OSError) and not htslib_says:
                # nothing wrong with the record: the file could not be written (pysam's errno is stale)
                raise OSError(f"the record at {record.contig}:{record.pos} was not written") from None
            reason = "; ".join(htslib_says) or str(error)
            raise InputError(
                f"{self.path}: cannot write the record at {record.contig}:{record.pos} ({reason}); "
                "BCF output needs every contig, INFO and FORMAT tag declared in the input header "
                "(write VCF with -O z, or add the header lines)"
            ) from None

    def _copy_new_header_lines(self) -> None:
        lines = list(self._source_header.records)[self._copied :]
        for line in lines:
            self._file.header.add_line(str(line).strip())
        self._copied += len(lines)

    def _check_order(self, record: pysam.VariantRecord) -> None:
        here = (record.contig, record.pos)
        if self._last is not None:
            same_contig = here[0] == self._last[0]
            went_back = here[1] < self._last[1] if same_contig else here[0] in self._seen_contigs
            if went_back:
                raise InputError(
                    f"an index needs sorted records: {here[0]}:{here[1]} comes after "
                    f"{self._last[0]}:{self._last[1]} (sort the input with bcftools sort)"
                )
        self._seen_contigs.add(here[0])
        self._last = here

    def close(self) -> None:
        """Finish the file (a header-only file when there were no records); an OSError if that fails."""
        if self.fmt != "b" and not self._header_written:
            self._write_text_header()
        self._file.close()

    def abandon(self) -> None:
        """Close the file after a failure, without raising: it is removed, and the failure reported."""
        with contextlib.suppress(OSError, ValueError):
            self._file.close()


@dataclass(frozen=True)
class Saved:
    """What an interrupted run saved in its partial VCF: its record count and the last record's key."""

    records: int
    last: tuple[str, int, str, tuple[str, ...]] | None


def record_key(record: pysam.VariantRecord) -> tuple[str, int, str, tuple[str, ...]]:
    """CHROM, POS, REF and ALTs: what identifies a record of the input in its scored copy."""
    return record.contig, record.pos, record.ref, tuple(record.alts or ())


@contextlib.contextmanager
def vcf_output(
    path: Path, fmt: str, header: pysam.VariantHeader, messages: HtslibMessages, threads: int = 1,
    index: bool = False, csi: bool = False, resumable: bool = False, resume: bool = False,
) -> Iterator[VcfWriter]:
    """A `VcfWriter` on `path`, written under a temporary name (`committed`): on success closed, indexed
    when `index` (sorted records checked as written; a .csi with `csi` or where a .tbi cannot reach) and
    renamed; on an error abandoned, with nothing left at `path` or beside it (a stale index goes too).

    A `resumable` output (VCF or bgzipped VCF) interrupted (Ctrl-C, SIGTERM) is closed with the records
    written so far and kept as `path`.partial; with `resume` (checked first: `check_resumable`) the
    writer appends to that file, its records taken first (the order check and counts go on after them)."""
    with committed(path, companions=INDEX_SUFFIXES, resumable=resumable) as temporary:
        writer = VcfWriter(str(temporary), fmt, header, messages, threads, sorted_check=index, append=resume)
        interrupted = False
        try:
            try:
                if resume:
                    with open_vcf(str(temporary), messages) as saved:
                        writer.take_saved(records(saved, str(temporary), messages))
                yield writer
            except KeyboardInterrupt:
                if not resumable:
                    raise
                interrupted = True
                writer.close()
                raise KeyboardInterrupt(
                    f"{writer.records} records done saved in {temporary}; "
                    "rerun the same command with --resume to continue"
                ) from None
            writer.close()
            if index:
                csi = csi or needs_csi(fmt, list(declared_contigs(header).values()), writer.max_end)
                write_index(temporary, index_path(temporary, csi), csi)
        except BaseException:
            if not interrupted:
                writer.abandon()
                if resumable:  # kept after an interrupt only: a failed write may have left half a block
                    temporary.unlink(missing_ok=True)
            raise


def check_resumable(partial: Path, header: pysam.VariantHeader, messages: HtslibMessages) -> Saved:
    """What `partial` holds, checked to be saved by a run that scores as the one with `header` would: the
    same `##caduceus_` lines (version, model, window, shard, background) but for the command line."""

    def made(lines: list[str]) -> list[str]:
        return [line for line in lines if line.startswith("##caduceus_") and not line.startswith(f"##{COMMAND_KEY}=")]

    if not partial.exists():
        raise InputError(f"{partial}: no partial file to resume; run without --resume")
    with open_vcf(str(partial), messages) as saved:
        before, now = made(str(saved.header).splitlines()), made(str(header).splitlines())
        if before != now:
            changed = next((b, n) for b, n in zip([*before, ""], [*now, ""], strict=False) if b != n)
            raise InputError(
                f"{partial}: cannot resume, it was made otherwise ({changed[0] or 'nothing'} and now "
                f"{changed[1] or 'nothing'}); run without --resume to start over"
            )
        count, last = 0, None
        for record in records(saved, str(partial), messages):
            count, last = count + 1, record_key(record)
    return Saved(count, last)


def needs_csi(fmt: str, contig_lengths: list[int | None], max_end: int) -> bool:
    """BCF can only have a CSI index; a VCF.gz gets a TBI unless a contig or record goes past 512 Mbp."""
    too_long = max_end > TBI_MAX_POSITION or any((n or 0) > TBI_MAX_POSITION for n in contig_lengths)
    return fmt == "b" or too_long


def index_path(path: str | Path, csi: bool) -> str:
    return f"{path}{INDEX_SUFFIXES[csi]}"


def write_index(data_path: str | Path, index_file: str | Path, csi: bool) -> None:
    """Index a finished bgzipped VCF or BCF with htslib (through pysam's bundled bcftools).

    The records were checked sorted as they were written, so a failure is one of writing the index
    (an OSError, as `committed` expects)."""
    try:
        pysam.bcftools.index("--csi" if csi else "--tbi", "--force", "-o", str(index_file), str(data_path))
    except pysam.utils.SamtoolsError as error:
        raise OSError(f"indexing failed ({' '.join(str(error).split())})") from None
