"""FASTA access and contig-name matching: caduceus_cli.io.fasta and caduceus_cli.io.contigs."""

from __future__ import annotations

import gzip
import logging
import os
import random
import stat
import threading
from pathlib import Path

import pysam
import pytest

from caduceus_cli.errors import InputError
from caduceus_cli.io import fasta as fasta_module
from caduceus_cli.io.contigs import ContigMatcher, name_sample, read_chrom_map
from caduceus_cli.io.fasta import Fasta


def write_fasta(path: Path, records: dict[str, str], width: int = 7) -> Path:
    """A FASTA with lines of `width` bases, short enough that windows cross line ends."""
    with open(path, "w") as handle:
        for name, seq in records.items():
            handle.write(f">{name} some description\n")
            handle.writelines(seq[i : i + width] + "\n" for i in range(0, len(seq), width))
    return path


def random_seq(length: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("ACGTacgtN") for _ in range(length))


RECORDS = {"chr1": random_seq(100, 1), "chr2": random_seq(37, 2), "chrM": random_seq(20, 3)}


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    return write_fasta(tmp_path / "ref.fa", RECORDS)


@pytest.fixture
def bgzipped(plain: Path) -> Path:
    target = plain.with_suffix(".fa.gz")
    pysam.tabix_compress(str(plain), str(target))
    return target


def error_of(path: Path, **kwargs: object) -> str:
    with pytest.raises(InputError) as caught:
        Fasta(path, **kwargs)
    return str(caught.value)


# --- opening and indexing ---------------------------------------------------------------------


def test_contigs_are_names_and_lengths_in_file_order(plain: Path) -> None:
    with Fasta(plain) as fasta:
        assert fasta.contigs == {"chr1": 100, "chr2": 37, "chrM": 20}
        assert list(fasta.contigs) == ["chr1", "chr2", "chrM"]
        assert fasta.path == str(plain)


def test_missing_fai_is_created_beside_the_fasta_readable_like_it(plain: Path) -> None:
    plain.chmod(0o644)
    assert not Path(f"{plain}.fai").exists()
    Fasta(plain).close()
    assert Path(f"{plain}.fai").read_text().splitlines()[0].split("\t")[:2] == ["chr1", "100"]
    assert stat.S_IMODE(os.stat(f"{plain}.fai").st_mode) == stat.S_IMODE(os.stat(plain).st_mode) & 0o666
    assert sorted(p.name for p in plain.parent.iterdir()) == ["ref.fa", "ref.fa.fai"]  # no temporaries


def test_bgzip_fasta_gets_fai_and_gzi_and_reads_like_plain(plain: Path, bgzipped: Path) -> None:
    with Fasta(plain) as reference, Fasta(bgzipped) as compressed:
        assert compressed.contigs == reference.contigs
        for contig, start, end in [("chr1", 0, 100), ("chr1", 5, 66), ("chr2", -4, 41), ("chrM", 19, 20)]:
            assert compressed.fetch(contig, start, end) == reference.fetch(contig, start, end)
    assert Path(f"{bgzipped}.fai").exists() and Path(f"{bgzipped}.gzi").exists()


def test_bgzip_fasta_with_fai_but_no_gzi_gets_its_gzi(bgzipped: Path) -> None:
    Fasta(bgzipped).close()
    os.remove(f"{bgzipped}.gzi")
    with Fasta(bgzipped) as fasta:
        assert fasta.fetch("chr2", 0, 37) == RECORDS["chr2"]
    assert Path(f"{bgzipped}.gzi").exists()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    assert error_of(tmp_path / "absent.fa") == f"{tmp_path / 'absent.fa'}: FASTA file not found"


def test_a_fasta_from_a_pipe_is_refused_saying_why(tmp_path: Path) -> None:
    fifo = tmp_path / "genome.fa"
    os.mkfifo(fifo)  # nothing writes: the check must not open it
    assert error_of(fifo) == (
        f"{fifo}: not a regular file; a FASTA is read through its index (.fai), which a pipe cannot give"
    )


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.fa"
    path.write_text("\n\n")
    assert error_of(path) == f"{path}: FASTA file is empty"


def test_non_fasta_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "reads.fq"
    path.write_text("@read1\nACGT\n+\nIIII\n")
    assert "not a FASTA file" in error_of(path)


@pytest.mark.parametrize("compress", [False, True])
def test_non_printing_bytes_in_a_sequence_are_an_error_naming_contig_line_and_offset(
    tmp_path: Path, compress: bool
) -> None:
    path = tmp_path / "nul.fa"
    path.write_bytes(b">a desc\nACGT\n>b\n\x00\xff\xfeACGT\n")
    if compress:
        pysam.tabix_compress(str(path), str(path) + ".gz")
        path = Path(str(path) + ".gz")
    assert error_of(path) == (
        f"{path}:4: contig 'b': byte 0x00 at file offset 16 is not text; a FASTA holds printable letters only"
    )
    assert not list(tmp_path.glob("*.fai*")) and not list(tmp_path.glob("*.gzi*"))  # no index left either


def test_gzip_that_is_not_bgzip_is_an_error_suggesting_bgzip(plain: Path) -> None:
    target = plain.with_suffix(".fa.gz")
    target.write_bytes(gzip.compress(plain.read_bytes()))
    message = error_of(target)
    assert message.startswith(f"{target}: compressed with gzip, not bgzip")
    assert "bgzip" in message.split("not bgzip", 1)[1]


def test_duplicate_contig_names_are_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.fa"
    path.write_text(">a\nACGT\n>b\nGG\n>a other\nTT\n")
    assert error_of(path) == f"{path}:5: duplicate contig name 'a' (first at line 1)"
    assert not Path(f"{path}.fai").exists()


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 13, 64])
def test_header_scan_finds_duplicates_whatever_the_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # One long single-line sequence and a '>' inside a header exercise the carried partial lines.
    path = tmp_path / "dup.fa"
    path.write_text(">x a>b\n" + "A" * 50 + "\n>yy\nC\n>zz\nG\n>yy\nT")
    monkeypatch.setattr(fasta_module, "_SCAN_CHUNK", chunk)
    assert error_of(path) == f"{path}:7: duplicate contig name 'yy' (first at line 3)"


def test_duplicate_names_in_an_existing_fai_are_an_error(tmp_path: Path) -> None:
    path = write_fasta(tmp_path / "ref.fa", {"a": "ACGT", "b": "GG"})
    Path(f"{path}.fai").write_text("a\t4\t3\t4\t5\na\t2\t11\t2\t3\n")
    assert error_of(path) == f"{path}.fai:2: duplicate contig name 'a'"


def test_ragged_lines_give_htslibs_reason_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.fa"
    path.write_text(">a\nACGT\nAC\nACGT\n")
    message = error_of(path)
    assert message.startswith(f"{path}: cannot index FASTA: ")
    assert "line 4" in message and "\n" not in message


def test_truncated_bgzip_is_an_error(bgzipped: Path) -> None:
    truncated = bgzipped.with_name("truncated.fa.gz")
    truncated.write_bytes(bgzipped.read_bytes()[:60])
    assert error_of(truncated).startswith(f"{truncated}: cannot read FASTA or its index (")


def test_unreadable_fai_is_an_error(plain: Path) -> None:
    Path(f"{plain}.fai").write_text("not an index\n")
    assert error_of(plain).startswith(f"{plain}: cannot read FASTA or its index (")


def test_header_without_name_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "noname.fa"
    path.write_text(">a\nAC\n> \nGG\n")
    assert error_of(path) == f"{path}:3: FASTA header without a contig name"


def test_missing_index_in_unwritable_folder_is_a_clear_error(plain: Path) -> None:
    # Tests run as root, who may write into any chmod-ed folder; /proc/self/fd is a folder no one
    # can create files in, and /proc/self/fd/N is a readable path to the FASTA.
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs Linux /proc")
    descriptor = os.open(plain, os.O_RDONLY)
    try:
        path = f"/proc/self/fd/{descriptor}"
        message = error_of(Path(path))
    finally:
        os.close(descriptor)
    assert message.startswith(f"{path}: index {path}.fai is missing and /proc/self/fd is not writable")
    assert f"run samtools faidx {path} as a user who can write there" in message


def test_chrom_map_and_aliases_resolve_through_the_fasta(plain: Path) -> None:
    with Fasta(plain, chrom_map={"mito": "chrM"}) as fasta:
        assert fasta.resolve("1") == "chr1"
        assert fasta.resolve("MT") == "chrM"
        assert fasta.resolve("mito") == "chrM"
        assert fasta.resolve("chr3") is None


# --- fetching -----------------------------------------------------------------------------------


def test_fetch_is_zero_based_half_open_across_line_ends_and_keeps_case(plain: Path) -> None:
    with Fasta(plain) as fasta:
        assert fasta.fetch("chr1", 0, 100) == RECORDS["chr1"]
        assert fasta.fetch("chr1", 6, 15) == RECORDS["chr1"][6:15]
        assert fasta.fetch("chr1", 3, 3) == ""
    assert any(base.islower() for base in RECORDS["chr1"][6:15])  # soft-masking really was tested


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (-3, 4, "NNN" + RECORDS["chr2"][:4]),
        (33, 40, RECORDS["chr2"][33:] + "NNN"),
        (-2, 39, "NN" + RECORDS["chr2"] + "NN"),
        (-9, -4, "NNNNN"),
        (40, 45, "NNNNN"),
    ],
)
def test_positions_outside_the_contig_read_as_n(plain: Path, start: int, end: int, expected: str) -> None:
    with Fasta(plain) as fasta:
        assert fasta.fetch("chr2", start, end) == expected


def test_fetch_works_from_a_reader_thread(bgzipped: Path) -> None:
    fetched: list[str] = []
    with Fasta(bgzipped) as fasta:
        reader = threading.Thread(target=lambda: fetched.append(fasta.fetch("chr1", 10, 90)))
        reader.start()
        reader.join()
    assert fetched == [RECORDS["chr1"][10:90]]


# --- contig names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fasta_names", "query", "expected"),
    [
        (["chr1", "chrX"], "1", "chr1"),
        (["1", "X"], "chr1", "1"),
        (["1", "X"], "chrX", "X"),
        (["1", "X"], "CHRX", "X"),
        (["chrX"], "X", "chrX"),
        (["chrM"], "MT", "chrM"),
        (["chrM"], "chrMT", "chrM"),
        (["MT"], "chrM", "MT"),
        (["MT"], "M", "MT"),
        (["chr1"], "chr2", None),
        (["chr1"], "chr", None),
        (["1", "chr1"], "1", "1"),  # exact names win over aliases
        (["1", "chr1"], "chr1", "chr1"),
    ],
)
def test_contig_aliases(fasta_names: list[str], query: str, expected: str | None) -> None:
    assert ContigMatcher(fasta_names).resolve(query) == expected


def test_a_name_matched_by_alias_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    matcher = ContigMatcher(["Chr1", "chr2"])
    with caplog.at_level(logging.INFO, logger="caduceus"):
        for name in ("chr1", "chr1", "chr2", "1"):
            matcher.resolve(name)
    assert [r.getMessage() for r in caplog.records] == [
        "contig 'chr1' read as FASTA contig 'Chr1' (chr/M/MT naming; --chrom-map overrides)",
        "contig '1' read as FASTA contig 'Chr1' (chr/M/MT naming; --chrom-map overrides)",
    ]


def test_chrom_map_overrides_aliases() -> None:
    matcher = ContigMatcher(["chr1", "chr1_alt"], {"1": "chr1_alt"})
    assert matcher.resolve("1") == "chr1_alt"
    assert matcher.resolve("chr1") == "chr1"


def test_chrom_map_target_is_itself_matched_by_alias() -> None:
    assert ContigMatcher(["chr7"], {"NC_000007.14": "7"}).resolve("NC_000007.14") == "chr7"


def test_name_matching_two_fasta_contigs_is_an_error() -> None:
    with pytest.raises(InputError, match=r"contig 'CHR1' matches several FASTA contigs \(1, chr1\)"):
        ContigMatcher(["1", "chr1"]).resolve("CHR1")


def test_read_chrom_map_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "map.txt"
    path.write_text("# old new\n\n1 chr1\nMT\tchrM\n  \n")
    assert read_chrom_map(path) == {"1": "chr1", "MT": "chrM"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 chr1\n2\n", "map.txt:2: expected two columns 'old new', found 1"),
        ("1 chr1 extra\n", "map.txt:1: expected two columns 'old new', found 3"),
        ("1 chr1\n1 chrUn\n", "map.txt:2: '1' is mapped twice ('chr1' and 'chrUn')"),
    ],
)
def test_malformed_chrom_map_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "map.txt"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        read_chrom_map(path)
    assert str(caught.value) == f"{tmp_path}/{message}"


def test_missing_chrom_map_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="chromosome map file not found"):
        read_chrom_map(tmp_path / "absent.txt")


def test_name_sample_shows_a_few_names_and_the_count() -> None:
    assert name_sample(["a", "b"]) == "a, b"
    assert name_sample([f"c{i}" for i in range(9)], limit=3) == "c0, c1, c2, ... (9 in all)"


@pytest.mark.parametrize(("length", "refused"), [(2**31 - 1, False), (2**31, True), (3_000_000_000, True)])
def test_a_contig_longer_than_pysam_reads_is_refused_naming_it(tmp_path: Path, length: int, refused: bool) -> None:
    # The .fai says how long the contig is (as samtools writes it for a 3 Gbp conifer chromosome);
    # the FASTA beside it holds only a few bases, so no multi-GB file is needed.
    path = write_fasta(tmp_path / "conifer.fa", {"chr1": "ACGTACG", "chr2": "ACGTACG"})
    (tmp_path / "conifer.fa.fai").write_text(f"chr1\t7\t6\t7\t8\nchr2\t{length}\t20\t7\t8\n")
    if not refused:  # pysam's own limit: such a contig opens with its true length
        with Fasta(path) as reference:
            assert reference.contigs == {"chr1": 7, "chr2": 2**31 - 1}
        return
    with pytest.raises(InputError) as error:
        Fasta(path)
    assert str(error.value) == (
        f"{path}: contig chr2 is {length:,} bp; caduceus reads contigs up to 2,147,483,647 bp "
        "(pysam's limit); split it into parts no longer than that"
    )
