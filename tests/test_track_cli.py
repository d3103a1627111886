"""`caduceus track` and `caduceus merge` of track shards end to end, read back with pyBigWig."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from caduceus_cli.model.load import load_model
from caduceus_cli.scoring.tracks import track_scores
from caduceus_cli.tokens import CADUCEUS, NUCLEOTIDE_IDS

pyBigWig = pytest.importorskip("pyBigWig")

WINDOW, OVERLAP = 64, 8
rng = np.random.default_rng(5)
SEQUENCES = {
    "chr2": "".join(rng.choice(list("ACGTacgt"), 300)),
    "chr1": "".join(rng.choice(list("ACGT"), 150)) + "N" * 20 + "".join(rng.choice(list("ACGT"), 30)),
    "chrM": "".join(rng.choice(list("ACGT"), 40)),
}  # FASTA order, not sorted by name


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("track_genome") / "ref.fa"
    path.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in SEQUENCES.items()))
    return path


@pytest.fixture
def model(tiny_checkpoint) -> Path:
    return tiny_checkpoint("ph")


@pytest.fixture
def track(run_cli, genome, model):
    """`caduceus track GENOME --window 64 --overlap 8 -m MODEL -q ARGS`, which must succeed."""

    def run(*args):
        result = run_cli("track", genome, "--window", WINDOW, "--overlap", OVERLAP, "-m", model, "-q", *args)
        assert result.code == 0, result.err
        return result

    return run


def read_bigwig(path: Path) -> dict[str, np.ndarray]:
    with pyBigWig.open(str(path)) as bw:
        return {
            chrom: np.array(bw.values(chrom, 0, size), dtype=np.float32)
            for chrom, size in bw.chroms().items()
        }


def api_scores(model: Path, chrom: str, start: int, end: int, score: str) -> np.ndarray:
    """`track_scores` of one window [start, end) straight from the model's conjoined logits."""
    ids = CADUCEUS.encode(SEQUENCES[chrom][start:end])
    with torch.inference_mode():
        logits = load_model(model).logits_conjoined(torch.from_numpy(ids)[None])[0].float().numpy()
    return track_scores(logits[:, NUCLEOTIDE_IDS], CADUCEUS.columns(ids), [score])[score]


def test_bigwig_values_are_the_python_apis_track_scores_with_gaps_at_n(track, tmp_path, model):
    out = tmp_path / "chrM.bw"
    track("-r", "chrM", "-o", out, "-s", "ref-logprob")
    with pyBigWig.open(str(out)) as bw:
        assert list(bw.chroms()) and bw.chroms()["chr2"] == 300  # every contig declared, sizes from the FASTA
    values = read_bigwig(out)
    np.testing.assert_array_equal(values["chrM"], api_scores(model, "chrM", 0, 40, "ref-logprob"))
    assert np.isnan(values["chr1"]).all() and np.isnan(values["chr2"]).all()


def test_every_contig_tiled_with_n_bases_left_without_values(track, tmp_path):
    out = tmp_path / "all.bw"
    track("-o", out)
    values = read_bigwig(out)
    assert {chrom: len(v) for chrom, v in values.items()} == {c: len(s) for c, s in SEQUENCES.items()}
    assert np.isnan(values["chr1"][150:170]).all()
    assert np.isfinite(values["chr1"][:150]).all() and np.isfinite(values["chr2"]).all()
    assert (values["chr2"] <= 0).sum() > 250  # llr-min: the most damaging change costs likelihood


@pytest.mark.parametrize("variant", ["ph", "ps"])
def test_bigwig_equals_ism_min_llr_where_both_read_the_same_window(
    run_cli, tmp_path, genome, tiny_checkpoint, variant
):
    # ism's grid tile for bases 33-64 (1-based) at --window 64 is chr2:17-80; so is track's one window
    model = tiny_checkpoint(variant)
    out = tmp_path / "w.bw"
    result = run_cli("track", genome, "-r", "chr2:17-80", "--window", WINDOW, "-m", model, "-q", "-o", out)
    assert result.code == 0, result.err
    ism = run_cli("ism", genome, "-r", "chr2:33-64", "-o", "-", "-w", WINDOW, "-m", model, "-q")
    assert ism.code == 0, ism.err
    rows = [line.split("\t") for line in ism.out.splitlines()[1:]]
    llr_min = {}
    for _, pos, _, _, llr, _, _ in rows:
        llr_min[int(pos)] = min(llr_min.get(int(pos), np.inf), np.float32(llr))
    values = read_bigwig(out)["chr2"]
    for pos, expected in llr_min.items():
        assert values[pos - 1] == expected
    np.testing.assert_array_equal(values[32:64], api_scores(model, "chr2", 16, 80, "llr-min")[16:48])


def test_several_scores_write_one_file_each_and_bedgraph_is_bgzipped(track, tmp_path):
    track("-r", "chrM", "-o", tmp_path / "t.bedgraph.gz", "-s", "entropy", "-s", "llr-mean")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.entropy.bedgraph.gz", "t.llr-mean.bedgraph.gz"]
    lines = gzip.decompress((tmp_path / "t.entropy.bedgraph.gz").read_bytes()).decode().splitlines()
    assert len(lines) == 40 and lines[0].startswith("chrM\t0\t1\t")
    assert (tmp_path / "t.entropy.bedgraph.gz").read_bytes()[:4] == b"\x1f\x8b\x08\x04"  # BGZF


@pytest.mark.parametrize("suffix", ["bw", "bedgraph.gz"])
def test_merged_shards_equal_the_unsharded_run_byte_for_byte(track, run_cli, tmp_path, genome, suffix):
    bed = tmp_path / "regions.bed"
    bed.write_text("chr1\t0\t100\nchr2\t10\t290\nchr1\t120\t200\nchrM\t0\t40\n")
    track("-R", bed, "-o", tmp_path / f"single.{suffix}")
    for i in (1, 2, 3):
        track("-R", bed, "--shard", f"{i}/3", "-o", tmp_path / f"part{i}.{suffix}")
    parts = [tmp_path / f"part{i}.{suffix}" for i in (3, 1, 2)]
    merged = run_cli("merge", *parts, "--fasta", genome, "-o", tmp_path / f"merged.{suffix}")
    assert merged.code == 0, merged.err
    assert (tmp_path / f"merged.{suffix}").read_bytes() == (tmp_path / f"single.{suffix}").read_bytes()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("-r", "chr1:190-201"), 1, "past the end"),
        (("-r", "chr1:20-19"), 1, "before start"),
        (("-r", "chr1:1-50", "-r", "chr1:40-60"), 1, "overlap"),
        (("-r", "chrM", "-o", "no/such/folder/t.bw"), 1, "does not exist"),
        (("-r", "chrM", "-o", "-"), 2, "-o -"),
        (("-r", "chrM", "--overlap", "64"), 2, "--overlap"),
        (("-r", "chrM", "--shard", "3/2"), 2, "--shard"),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code_and_leaves_nothing(
    run_cli, tmp_path, genome, model, monkeypatch, args, code, message
):
    monkeypatch.chdir(tmp_path)
    options = args if "-o" in args else (*args, "-o", "t.bw")
    result = run_cli("track", genome, "--window", WINDOW, *options, "-m", model, "-q")
    assert result.code == code
    assert message in result.err
    if code == 1:
        assert result.err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_merging_track_shards_needs_the_fasta(track, run_cli, tmp_path):
    track("-r", "chrM", "-o", tmp_path / "part.bw", "--shard", "1/1")
    result = run_cli("merge", tmp_path / "part.bw", "-o", tmp_path / "all.bw")
    assert result.code == 2 and "--fasta" in result.err
    assert not (tmp_path / "all.bw").exists()


@pytest.mark.parametrize(
    ("name", "fmt", "message"),
    [
        ("t.bedgraph", None, "t.bedgraph: bedGraph tracks are written bgzipped (for tabix); name it t.bedgraph.gz"),
        ("t.bg", None, "t.bg: bedGraph tracks are written bgzipped (for tabix); name it t.bg.gz"),
        ("t.bw", "bedgraph", "t.bw: a bigwig name for a bedgraph track (--format bedgraph); name it *.bedgraph.gz"),
        ("t.bg.gz", "bigwig", "t.bg.gz: a bedgraph name for a bigwig track (--format bigwig); name it *.bw"),
    ],
)
def test_an_output_name_that_contradicts_the_tracks_format_is_refused(
    run_cli, tmp_path, genome, model, monkeypatch, name, fmt, message
):
    monkeypatch.chdir(tmp_path)
    result = run_cli("track", genome, "-r", "chrM", "-o", name, *(("--format", fmt) if fmt else ()), "-m", model)
    assert result == (2, "", f"caduceus: error: -o {message}\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "magic"), [("t.bigwig", b"\x26\xfc\x8f\x88"), ("t.bg.gz", b"\x1f\x8b\x08\x04")])
def test_the_tracks_format_follows_the_output_name(track, tmp_path, name, magic):
    track("-r", "chrM", "-o", tmp_path / name)
    assert (tmp_path / name).read_bytes()[:4] == magic  # bigWig's signature; BGZF's gzip header


def test_merging_bigwig_shards_into_a_bedgraph_name_is_refused(track, run_cli, tmp_path, genome):
    track("-r", "chrM", "-o", tmp_path / "part.bw", "--shard", "1/1")
    result = run_cli("merge", tmp_path / "part.bw", "--fasta", genome, "-o", tmp_path / "all.bedgraph.gz")
    assert result.code == 2
    assert result.err == (
        f"caduceus: error: -o {tmp_path / 'all.bedgraph.gz'}: a bedgraph name for a bigwig track "
        "(the shards are bigwig); name it *.bw\n"
    )
