"""Per-base score tracks (`caduceus_cli.io.tracks`): bigWig and bgzipped bedGraph, read back and merged."""

from __future__ import annotations

import gzip
import sys

import numpy as np
import pysam
import pytest

from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io import tracks
from caduceus_cli.io.tracks import track_writer
from caduceus_cli.pipelines.ism import ism_table
from caduceus_cli.pipelines.merge.tracks import merge_tracks
from caduceus_cli.scoring.tracks import track_scores
from caduceus_cli.tokens import CADUCEUS

pyBigWig = pytest.importorskip("pyBigWig")

CHROM_SIZES = {"chr2": 300, "chr1": 200, "chrM": 50}  # FASTA order, not sorted by name


def _values(size: int, seed: int) -> np.ndarray:
    values = np.random.default_rng(seed).normal(-1.0, 0.7, size).astype(np.float32)
    values[size // 3 : size // 3 + 7] = np.nan  # a run of N bases
    return values


GENOME = {chrom: _values(size, seed) for seed, (chrom, size) in enumerate(CHROM_SIZES.items())}
# regions as a sharded run would split them: several per contig, shards interleaved
REGIONS = [("chr2", 0, 120), ("chr2", 120, 300), ("chr1", 0, 80), ("chr1", 80, 200), ("chrM", 0, 50)]


def _write(path, fmt, regions=REGIONS, chrom_sizes=CHROM_SIZES):
    with track_writer(path, chrom_sizes, fmt) as writer:
        for chrom, start, end in regions:
            writer.add(chrom, start, GENOME[chrom][start:end])


def _read_bigwig(path) -> dict[str, np.ndarray]:
    track = pyBigWig.open(str(path))
    try:
        return {chrom: track.values(chrom, 0, size, numpy=True) for chrom, size in track.chroms().items()}
    finally:
        track.close()


def _assert_genome(values: dict[str, np.ndarray]) -> None:
    assert set(values) == set(GENOME)
    for chrom, expected in GENOME.items():
        np.testing.assert_array_equal(values[chrom], expected)  # NaN where the track has no value


def test_bigwig_holds_every_value_as_written_and_no_entry_for_nan(tmp_path):
    path = tmp_path / "scores.bw"
    _write(path, "bigwig")
    track = pyBigWig.open(str(path))
    assert track.chroms() == CHROM_SIZES
    gap = CHROM_SIZES["chr2"] // 3
    assert track.intervals("chr2", gap - 1, gap + 8) == (
        (gap - 1, gap, float(GENOME["chr2"][gap - 1])),
        (gap + 7, gap + 8, float(GENOME["chr2"][gap + 7])),
    )
    assert track.stats("chr1", 0, 200, type="max")[0] == pytest.approx(float(np.nanmax(GENOME["chr1"])))
    track.close()
    _assert_genome(_read_bigwig(path))
    assert [p.name for p in tmp_path.iterdir()] == ["scores.bw"]


def test_bigwig_is_the_same_file_written_in_pieces_or_at_once(tmp_path):
    _write(tmp_path / "pieces.bw", "bigwig")
    _write(tmp_path / "whole.bw", "bigwig", [(chrom, 0, size) for chrom, size in CHROM_SIZES.items()])
    assert (tmp_path / "pieces.bw").read_bytes() == (tmp_path / "whole.bw").read_bytes()


def test_bedgraph_is_bgzipped_zero_based_lines_without_a_header_and_tabix_indexable(tmp_path):
    path = tmp_path / "scores.bedgraph.gz"
    _write(path, "bedgraph")
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert lines[0] == f"chr2\t0\t1\t{str(GENOME['chr2'][0])}"
    rows = [line.split("\t") for line in lines]
    assert [row[0] for row in rows] == sorted((row[0] for row in rows), key=list(CHROM_SIZES).index)
    assert all(int(end) == int(start) + 1 for _, start, end, _ in rows)
    assert len(rows) == sum(int(np.isfinite(v).sum()) for v in GENOME.values())
    for chrom, start, _, value in rows:
        assert np.float32(value) == GENOME[chrom][int(start)]  # exact float32 round trip

    pysam.tabix_index(str(path), preset="bed", force=True)
    with pysam.TabixFile(str(path)) as indexed:
        fetched = [line.split("\t") for line in indexed.fetch("chr1", 10, 12)]
    assert [(c, int(s)) for c, s, _, _ in fetched] == [("chr1", 10), ("chr1", 11)]


@pytest.mark.parametrize("fmt", ["bigwig", "bedgraph"])
def test_merged_shards_equal_an_unsharded_write(tmp_path, fmt):
    suffix = ".bw" if fmt == "bigwig" else ".bedgraph.gz"
    _write(tmp_path / f"whole{suffix}", fmt)
    shards = [tmp_path / f"shard{i}{suffix}" for i in range(3)]
    for index, shard in enumerate(shards):  # region i goes to shard i % 3: shards interleave
        _write(shard, fmt, REGIONS[index::3])
    merge_tracks(shards, tmp_path / f"merged{suffix}", CHROM_SIZES, fmt)
    assert (tmp_path / f"merged{suffix}").read_bytes() == (tmp_path / f"whole{suffix}").read_bytes()
    if fmt == "bigwig":
        _assert_genome(_read_bigwig(tmp_path / f"merged{suffix}"))


@pytest.mark.parametrize("fmt", ["bigwig", "bedgraph"])
def test_merging_reads_shards_in_small_pieces_to_the_same_file(tmp_path, fmt, monkeypatch):
    monkeypatch.setattr(tracks, "READ_BASES", 7)
    monkeypatch.setattr(tracks, "READ_CHARS", 50)  # blocks end mid-line
    _write(tmp_path / "whole", fmt)
    shards = [tmp_path / "a", tmp_path / "b"]
    _write(shards[0], fmt, REGIONS[0::2])
    _write(shards[1], fmt, REGIONS[1::2])
    merge_tracks(shards, tmp_path / "merged", CHROM_SIZES, fmt)
    assert (tmp_path / "merged").read_bytes() == (tmp_path / "whole").read_bytes()


def test_a_bedgraph_shard_without_a_final_newline_is_read_whole(tmp_path):
    (tmp_path / "a.bedgraph.gz").write_bytes(gzip.compress(b"chr1\t5\t6\t0.5\nchr1\t6\t8\t-2"))
    merge_tracks([tmp_path / "a.bedgraph.gz"], tmp_path / "m.bedgraph.gz", CHROM_SIZES, "bedgraph")
    assert gzip.decompress((tmp_path / "m.bedgraph.gz").read_bytes()).decode().splitlines() == [
        "chr1\t5\t6\t0.5",
        "chr1\t6\t7\t-2.0",
        "chr1\t7\t8\t-2.0",
    ]


@pytest.mark.parametrize("text", ["track type=bedGraph\nchr1\t5\t6\t0.5\n", "chr1\t5\t6\tx\n"])
def test_a_file_that_is_not_a_bedgraph_track_is_an_error(tmp_path, text):
    (tmp_path / "a.bedgraph.gz").write_bytes(gzip.compress(text.encode()))
    with pytest.raises(InputError, match="a.bedgraph.gz: not a bedGraph track"):
        merge_tracks([tmp_path / "a.bedgraph.gz"], tmp_path / "m.bedgraph.gz", CHROM_SIZES, "bedgraph")
    assert not (tmp_path / "m.bedgraph.gz").exists()


def test_a_shard_may_be_empty(tmp_path):
    shards = [tmp_path / "a.bw", tmp_path / "b.bw"]
    _write(shards[0], "bigwig")
    _write(shards[1], "bigwig", [])
    merge_tracks(shards, tmp_path / "merged.bw", CHROM_SIZES, "bigwig")
    _assert_genome(_read_bigwig(tmp_path / "merged.bw"))


def test_overlapping_shards_are_an_error_and_leave_nothing(tmp_path):
    shards = [tmp_path / "a.bedgraph.gz", tmp_path / "b.bedgraph.gz"]
    _write(shards[0], "bedgraph", REGIONS[:2])
    _write(shards[1], "bedgraph", [("chr2", 50, 60)])
    with pytest.raises(InputError, match="chr2:51: track values out of FASTA order or overlapping"):
        merge_tracks(shards, tmp_path / "merged.bedgraph.gz", CHROM_SIZES, "bedgraph")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bedgraph.gz", "b.bedgraph.gz"]


def test_a_bigwig_shard_of_another_genome_is_an_error(tmp_path):
    _write(tmp_path / "a.bw", "bigwig")
    with pytest.raises(InputError, match="a.bw: its contigs are not those of the FASTA"):
        merge_tracks([tmp_path / "a.bw"], tmp_path / "m.bw", {"chr2": 300, "chr1": 200}, "bigwig")


def test_a_file_that_is_not_bigwig_is_an_error(tmp_path):
    (tmp_path / "a.bw").write_text("not a bigWig\n")
    with pytest.raises(InputError, match="a.bw: not a readable bigWig file"):
        merge_tracks([tmp_path / "a.bw"], tmp_path / "m.bw", CHROM_SIZES, "bigwig")


@pytest.mark.parametrize("fmt", ["bigwig", "bedgraph"])
@pytest.mark.parametrize(
    ("regions", "message"),
    [
        ([("chr1", 0, 10), ("chr2", 0, 10)], "chr2:1: track values out of FASTA order"),
        ([("chr2", 0, 10), ("chr2", 5, 10)], "chr2:6: track values out of FASTA order or overlapping"),
        ([("chr1", 190, 201)], r"chr1:191-201: past the end of chr1 \(200 bp\)"),
        ([("chr9", 0, 1)], "chr9: not a contig of the FASTA"),
    ],
)
def test_values_out_of_order_or_outside_the_genome_are_an_error_and_leave_nothing(
    tmp_path, fmt, regions, message
):
    zeros = np.zeros(max(CHROM_SIZES.values()) + 1, dtype=np.float32)
    with pytest.raises(InputError, match=message), track_writer(tmp_path / "t", CHROM_SIZES, fmt) as writer:
        for chrom, start, end in regions:
            writer.add(chrom, start, zeros[start:end])
    assert list(tmp_path.iterdir()) == []


def test_without_pybigwig_a_one_line_error_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyBigWig", None)  # import pyBigWig now raises ImportError
    with pytest.raises(UsageError, match=r"^bigWig output needs the pyBigWig package: pip install pyBigWig;") as error:
        _write(tmp_path / "scores.bw", "bigwig")
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_bigwig_value_equals_the_ism_score_at_that_base(tmp_path):
    rng = np.random.default_rng(5)
    reference = "ACGTNACGGT"
    logits = rng.normal(size=(len(reference), 4)).astype(np.float32)
    ids = CADUCEUS.columns(CADUCEUS.encode(reference))
    with track_writer(tmp_path / "llr-min.bw", {"chr1": 100}, "bigwig") as writer:
        writer.add("chr1", 40, track_scores(logits, ids, ("llr-min",))["llr-min"])
    track = pyBigWig.open(str(tmp_path / "llr-min.bw"))
    for pos in range(41, 41 + len(reference)):  # 1-based
        llrs = [llr for _, at, _, _, llr, _, _ in ism_table(logits, ids, "chr1", 40).rows() if at == pos]
        value = track.values("chr1", pos - 1, pos)[0]
        if llrs:
            assert value == np.float32(min(llrs))
        else:
            assert np.isnan(value)  # the N base
    track.close()
