"""Regions from BED files, `-r` strings and whole contigs: caduceus_cli.io.regions."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from caduceus_cli.errors import InputError
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.regions import Region, all_contigs, parse_region, read_bed, region_label

LENGTHS = {"chr1": 1000, "chr2": 50, "HLA-A*01:01": 30}


@pytest.fixture
def fasta(tmp_path: Path) -> Iterator[Fasta]:
    path = tmp_path / "ref.fa"
    path.write_text(
        "".join(
            f">{name}\n{'ACGT' * (length // 4)}{'A' * (length % 4)}\n" for name, length in LENGTHS.items()
        )
    )
    with Fasta(path) as opened:
        yield opened


def bed_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "regions.bed"
    path.write_text(text)
    return path


def bed_error(tmp_path: Path, text: str, fasta: Fasta) -> str:
    with pytest.raises(InputError) as caught:
        read_bed(bed_file(tmp_path, text), fasta)
    return str(caught.value)


# --- BED ----------------------------------------------------------------------------------------


def test_bed_columns_name_and_strand_are_read_and_headers_skipped(tmp_path: Path, fasta: Fasta) -> None:
    text = (
        "browser position chr1:1-100\n"
        'track name="peaks"\n'
        "# comment\n"
        "\n"
        "chr1\t10\t20\tpeak one\t0\t-\textra\n"
        "chr1\t0\t1000\n"
        "chr2\t5\t6\t.\t0\t.\n"
        "chr2\t7\t9\tp3\n"
    )
    assert read_bed(bed_file(tmp_path, text), fasta) == [
        Region("chr1", 10, 20, "peak one", "-"),
        Region("chr1", 0, 1000, "chr1", "+"),
        Region("chr2", 5, 6, "chr2:6-6", "+"),
        Region("chr2", 7, 9, "p3", "+"),
    ]


def test_space_separated_bed_is_accepted(tmp_path: Path, fasta: Fasta) -> None:
    assert read_bed(bed_file(tmp_path, "chr1 1 5  a  0 +\n"), fasta) == [Region("chr1", 1, 5, "a", "+")]


def test_bed_contig_names_are_resolved_to_fasta_names(tmp_path: Path, fasta: Fasta) -> None:
    assert read_bed(bed_file(tmp_path, "1\t0\t10\n"), fasta) == [Region("chr1", 0, 10, "chr1:1-10")]


def test_gzipped_bed_is_read(tmp_path: Path, fasta: Fasta) -> None:
    path = tmp_path / "regions.bed.gz"
    path.write_bytes(gzip.compress(b"chr2\t0\t50\n"))
    assert read_bed(path, fasta) == [Region("chr2", 0, 50, "chr2")]


@pytest.mark.parametrize("compress", [False, True])
def test_a_bed_from_a_pipe_is_read_once_plain_or_gzipped(tmp_path: Path, fasta: Fasta, named_pipe, compress: bool) -> None:
    """`-R <(sort peaks.bed)`: the pipe's bytes come once, so the file is opened once."""
    text = b"chr2\t0\t50\nchr1\t10\t20\tpeak\n"
    regions = read_bed(named_pipe(tmp_path / "regions.bed", gzip.compress(text) if compress else text), fasta)
    assert regions == [Region("chr2", 0, 50, "chr2"), Region("chr1", 10, 20, "peak")]


def test_bed_from_stdin(monkeypatch: pytest.MonkeyPatch, fasta: Fasta) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("chr2\t1\t2\n"))
    assert read_bed("-", fasta) == [Region("chr2", 1, 2, "chr2:2-2")]


def test_bad_line_on_stdin_is_named_stdin(monkeypatch: pytest.MonkeyPatch, fasta: Fasta) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("chr2\t1\n"))
    with pytest.raises(InputError, match=r"^<stdin>:1: expected at least 3 columns"):
        read_bed("-", fasta)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("chr1\t10", "expected at least 3 columns (chrom start end), found 2"),
        ("chr1\tten\t20", "start 'ten' is not an integer"),
        ("chr1\t10\t2.5e3", "end '2.5e3' is not an integer"),
        ("chr1\t1_0\t20", "start '1_0' is not an integer"),
        ("chr1\t20\t20", "start 20 is not before end 20 (BED is 0-based half-open)"),
        ("chr1\t30\t20", "start 30 is not before end 20 (BED is 0-based half-open)"),
        ("chr1\t-1\t20", "negative start -1"),
        ("chr2\t10\t51", "end 51 is past the end of chr2 (length 50)"),
        ("chr1\t10\t20\tn\t0\tx", "strand 'x' is not '+', '-' or '.'"),
    ],
)
def test_bad_bed_line_is_an_error_naming_file_and_line(
    tmp_path: Path, fasta: Fasta, line: str, message: str
) -> None:
    path = tmp_path / "regions.bed"
    assert bed_error(tmp_path, f"# header\nchr1\t0\t5\n{line}\n", fasta) == f"{path}:3: {message}"


def test_unknown_bed_contig_lists_fasta_contigs(tmp_path: Path, fasta: Fasta) -> None:
    message = bed_error(tmp_path, "chrZ\t0\t5\n", fasta)
    assert message == (
        f"{tmp_path / 'regions.bed'}:1: contig 'chrZ' is not in {fasta.path} "
        "(it has chr1, chr2, HLA-A*01:01); --chrom-map can rename contigs"
    )


def test_bed_without_regions_is_an_error(tmp_path: Path, fasta: Fasta) -> None:
    assert bed_error(tmp_path, "track name=x\n# nothing\n\n", fasta) == (
        f"{tmp_path / 'regions.bed'}: BED file has no regions"
    )


def test_missing_bed_is_an_error(tmp_path: Path, fasta: Fasta) -> None:
    with pytest.raises(InputError, match="absent.bed: BED file not found"):
        read_bed(tmp_path / "absent.bed", fasta)


def test_binary_bed_is_an_error(tmp_path: Path, fasta: Fasta) -> None:
    path = tmp_path / "regions.bed"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(InputError, match="regions.bed: not a text BED file"):
        read_bed(path, fasta)


# --- -r strings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chr1", Region("chr1", 0, 1000, "chr1")),
        ("chr1:101-200", Region("chr1", 100, 200, "chr1:101-200")),
        ("chr1:1-1,000", Region("chr1", 0, 1000, "chr1")),
        ("chr1:5-5", Region("chr1", 4, 5, "chr1:5-5")),
        ("chr1:901", Region("chr1", 900, 1000, "chr1:901-1000")),
        ("chr1:901-", Region("chr1", 900, 1000, "chr1:901-1000")),
        ("1:11-20", Region("chr1", 10, 20, "chr1:11-20")),
        ("HLA-A*01:01", Region("HLA-A*01:01", 0, 30, "HLA-A*01:01")),
        ("HLA-A*01:01:3-4", Region("HLA-A*01:01", 2, 4, "HLA-A*01:01:3-4")),
    ],
)
def test_region_strings_are_one_based_inclusive(fasta: Fasta, text: str, expected: Region) -> None:
    assert parse_region(text, fasta) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chr1:0-10", "start 0 is before 1 (regions are 1-based)"),
        ("chr1:20-10", "end 10 is before start 20"),
        ("chr1:1-1001", "end 1001 is past the end of chr1 (length 1000)"),
        ("chr1:a-10", "start 'a' is not an integer"),
        ("chr1:5-b", "end 'b' is not an integer"),
        ("chrZ:1-10", "contig 'chrZ' is not in"),
        ("chrZ", "contig 'chrZ' is not in"),
    ],
)
def test_bad_region_string_is_an_error_quoting_it(fasta: Fasta, text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_region(text, fasta)
    assert str(caught.value).startswith(f"region '{text}': {message}")


# --- whole contigs ------------------------------------------------------------------------------


def test_all_contigs_covers_each_contig_in_fasta_order(fasta: Fasta) -> None:
    assert all_contigs(fasta) == [Region(name, 0, length, name) for name, length in LENGTHS.items()]


def test_region_label_names_whole_contigs_by_contig() -> None:
    assert region_label("chr2", 0, 50, 50) == "chr2"
    assert region_label("chr2", 0, 49, 50) == "chr2:1-49"
