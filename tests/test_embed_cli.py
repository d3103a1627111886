"""`caduceus embed` end to end, through the real command line entry point (merge: test_merge.py)."""

import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from caduceus_cli.engine import Engine
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.hdf5.layout import PROVENANCE_ATTRS, Layout
from caduceus_cli.io.hdf5.writer import RegionCommits
from caduceus_cli.io.regions import parse_region, read_bed
from caduceus_cli.model.load import load_model
from caduceus_cli.pipelines.embed import EmbedJob
from caduceus_cli.tokens import CADUCEUS
from caduceus_cli.windows import tile_region

CHR1 = "".join(np.random.default_rng(7).choice(list("ACGT"), 600))
CHR1 = CHR1[:100] + CHR1[100:160].lower() + CHR1[160:300] + "NNNNN" + CHR1[305:400] + "R" + CHR1[401:]
CHR2 = "".join(np.random.default_rng(8).choice(list("ACGT"), 90))
CONTIGS = {"chr1": CHR1, "chr2": CHR2}
BED = "chr1\t10\t250\tpeakA\t0\t+\nchr2\t0\t90\tpeakB\t0\t-\nchr1\t200\t600\tpeakC\t0\t.\n"
# (chrom, start, end, strand) of the BED rows, then of `-r chr2:11-50`.
REGIONS = [("chr1", 10, 250, "+"), ("chr2", 0, 90, "-"), ("chr1", 200, 600, "+"), ("chr2", 10, 50, "+")]


def write_fasta(path: Path, contigs: dict[str, str]) -> Path:
    path.write_text(
        "".join(
            f">{name}\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n"
            for name, seq in contigs.items()
        )
    )
    return path


def write_inputs(folder: Path) -> tuple[Path, Path, Path]:
    """The reference, the BED file and a folder for outputs."""
    fasta = write_fasta(folder / "ref.fa", CONTIGS)
    bed = folder / "peaks.bed"
    bed.write_text(BED)
    return fasta, bed, folder


@pytest.fixture
def inputs(tmp_path):
    return write_inputs(tmp_path)


def embed_ok(run_cli, checkpoint, fasta, bed, out, *options):
    """`caduceus embed` of the BED regions and `-r chr2:11-50`, which must succeed."""
    inputs = (fasta, "-R", bed, "-r", "chr2:11-50", "--model", checkpoint, "-o", out)
    code, _, err = run_cli("embed", *inputs, *options)
    assert code == 0, err
    return err


def region_ids(chrom: str, start: int, end: int, strand: str) -> np.ndarray:
    ids = CADUCEUS.encode(CONTIGS[chrom][start:end])
    return CADUCEUS.reverse_complement(ids) if strand == "-" else ids


def model_embed(model, ids: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.embed(torch.from_numpy(ids)[None])[0].numpy()


def read(path: Path) -> dict[str, np.ndarray]:
    found = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda name, obj: found.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None
        )
    return found


def settings(path: Path) -> dict:
    with h5py.File(path, "r") as h5:
        return {key: value for key, value in h5.attrs.items() if key not in PROVENANCE_ATTRS}


def assert_same_output(a: Path, b: Path) -> None:
    left, right = read(a), read(b)
    assert list(left) == list(right)
    for name in left:
        assert np.array_equal(left[name], right[name]), name
    assert settings(a) == settings(b)


def test_untiled_values_equal_the_model_embedding_and_means(run_cli, checkpoint, inputs):
    fasta, bed, tmp = inputs
    options = ("--window", 1000, "--precision", "float32", "--pool", "mean", "--bin", 64)
    embed_ok(run_cli, checkpoint, fasta, bed, tmp / "out.h5", *options)
    model = load_model(checkpoint)
    out = read(tmp / "out.h5")
    assert out["regions/start"].tolist() == [r[1] for r in REGIONS]
    assert [s.decode() for s in out["regions/strand"]] == [r[3] for r in REGIONS]
    assert [s.decode() for s in out["regions/name"]] == ["peakA", "peakB", "peakC", "chr2:11-50"]
    for i, region in enumerate(REGIONS):
        expected = model_embed(model, region_ids(*region))
        np.testing.assert_allclose(out[f"embeddings/{i}"], expected, atol=1e-5, rtol=0)
        np.testing.assert_allclose(out["pooled"][i], expected.mean(axis=0), atol=1e-5, rtol=0)
        bins = [expected[k : k + 64].mean(axis=0) for k in range(0, len(expected), 64)]
        np.testing.assert_allclose(out[f"binned/{i}"], bins, atol=1e-5, rtol=0)


def test_a_model_without_training_length_embeds_with_the_published_window(run_cli, tiny_checkpoint, inputs):
    small_ph = tiny_checkpoint("ph")
    fasta, bed, tmp = inputs
    assert load_model(small_ph).default_window is None
    err = embed_ok(run_cli, small_ph, fasta, bed, tmp / "out.h5")
    assert settings(tmp / "out.h5")["window"] == 131_072
    assert "records no training length; tiling with --window 131072" in err


def test_the_python_api_writes_the_commands_file_byte_for_byte_and_returns_its_statistics(
    run_cli, tiny_checkpoint, inputs, monkeypatch
):
    small_ph = tiny_checkpoint("ph")
    fasta, bed, tmp = inputs
    monkeypatch.chdir(tmp)  # the same relative output name in both, as a user would type it
    embed_ok(run_cli, small_ph, fasta, bed, Path("cli.h5"), "--window", 128, "--precision", "float32")
    with h5py.File("cli.h5") as h5:
        typed = h5.attrs["command_line"]
    Path("cli.h5").rename("typed.h5")
    model = load_model(small_ph)
    with Fasta(fasta) as reference:
        regions = read_bed(bed, reference) + [parse_region("chr2:11-50", reference)]
        job = EmbedJob(output=Path("cli.h5"), fasta=fasta, regions=regions,
                       layout=Layout(d=8, precision="float32"), window=128, overlap=16,
                       command_line=typed)  # fmt: skip
        stats = job.run(Engine(model), reference)
    lengths = [end - start for _, start, end, _ in REGIONS]
    assert (stats.resumed, stats.regions, stats.bases) == (0, 4, sum(lengths))
    assert stats.seconds > 0 and stats.bases_per_second == stats.bases / stats.seconds
    assert Path("cli.h5").read_bytes() == Path("typed.h5").read_bytes()


def test_tiled_regions_keep_each_base_from_its_most_central_tile(run_cli, tiny_checkpoint, inputs):
    small_ph = tiny_checkpoint("ph")
    fasta, bed, tmp = inputs
    options = ("--window", 128, "--overlap", 32, "--precision", "float32")
    embed_ok(run_cli, small_ph, fasta, bed, tmp / "out.h5", *options)
    model = load_model(small_ph)
    out = read(tmp / "out.h5")
    for i, region in enumerate(REGIONS):
        ids = region_ids(*region)
        expected = np.zeros((len(ids), model.config.d_model), dtype=np.float32)
        for tile in tile_region(len(ids), 128, 32):
            expected[tile.dest] = model_embed(model, ids[tile.start : tile.end])[tile.keep]
        assert out[f"embeddings/{i}"].shape == (region[2] - region[1], model.config.d_model)
        np.testing.assert_allclose(out[f"embeddings/{i}"], expected, atol=1e-5, rtol=0)


def test_window_equal_to_region_length_gives_the_untiled_result(run_cli, tiny_checkpoint, inputs):
    small_ph = tiny_checkpoint("ph")
    fasta, bed, tmp = inputs
    options = ("--window", 240, "--precision", "float32")
    embed_ok(run_cli, small_ph, fasta, bed, tmp / "a.h5", *options)
    untiled = ("--window", 1000, "--precision", "float32")
    embed_ok(run_cli, small_ph, fasta, bed, tmp / "b.h5", *untiled)
    np.testing.assert_allclose(
        read(tmp / "a.h5")["embeddings/0"], read(tmp / "b.h5")["embeddings/0"], atol=1e-6
    )


def test_soft_mask_flags_follow_the_strand(run_cli, tiny_checkpoint, inputs):
    small_ps = tiny_checkpoint("ps")
    fasta, bed, tmp = inputs
    bed.write_text("chr1\t90\t170\tup\t0\t+\nchr1\t90\t170\tdown\t0\t-\n")
    args = (
        "embed",
        fasta,
        "-R",
        bed,
        "--model",
        small_ps,
        "--soft-mask",
        "--window",
        64,
        "-o",
        tmp / "out.h5",
    )
    code, _, err = run_cli(*args)
    assert code == 0, err
    out = read(tmp / "out.h5")
    lower = np.array([c.islower() for c in CHR1[90:170]], dtype=np.uint8)
    assert out["soft_mask/0"].tolist() == lower.tolist()
    assert out["soft_mask/1"].tolist() == lower[::-1].tolist()
    # RC-conjoined embeddings of the two strands are mirror images.
    np.testing.assert_allclose(out["embeddings/1"], out["embeddings/0"][::-1], atol=2e-3)


def test_same_input_gives_the_same_bytes(run_cli, monkeypatch, tiny_checkpoint, inputs):
    small_ps = tiny_checkpoint("ps")
    fasta, bed, tmp = inputs
    for run in ("a", "b"):  # same command line (relative output path) in two folders
        (tmp / run).mkdir()
        monkeypatch.chdir(tmp / run)
        embed_ok(run_cli, small_ps, fasta, bed, "out.h5", "--window", 128, "--bin", 32)
    assert (tmp / "a" / "out.h5").read_bytes() == (tmp / "b" / "out.h5").read_bytes()


def test_resume_after_interruption_gives_the_uninterrupted_result(
    run_cli, monkeypatch, tiny_checkpoint, inputs
):
    small_ph = tiny_checkpoint("ph")
    fasta, bed, tmp = inputs
    # Batch size 1 in every run, so each window's arithmetic is the same whatever else is left to do.
    options = ("--window", 128, "--pool", "mean", "--bin", 50, "--soft-mask", "--batch-size", 1)
    embed_ok(run_cli, small_ph, fasta, bed, tmp / "whole.h5", *options)

    real_region_done = RegionCommits.region_done
    calls = []

    def interrupted_in_the_third_region(self, *args):
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C: the two finished regions are committed on the way out
        calls.append(args)
        real_region_done(self, *args)

    monkeypatch.setattr(RegionCommits, "region_done", interrupted_in_the_third_region)
    inputs = (fasta, "-R", bed, "-r", "chr2:11-50", "--model", small_ph, "-o", tmp / "out.h5")
    args = ("embed", *inputs, *options)
    code = run_cli(*args).code
    assert code == 130
    assert not (tmp / "out.h5").exists() and (tmp / "out.h5.partial").exists()

    monkeypatch.setattr(RegionCommits, "region_done", real_region_done)
    code, _, err = run_cli(*args, "--resume")
    assert code == 0, err
    assert "resuming: 2 of 4 regions already done" in err
    assert not (tmp / "out.h5.partial").exists()
    assert_same_output(tmp / "out.h5", tmp / "whole.h5")


# Run in a child process that commits after every region and is SIGKILLed after the third commit:
# no Python cleanup, no HDF5 close and no rename, as when a job is killed by a scheduler.
KILLED_RUN = """
import os, signal, sys
import caduceus_cli.io.hdf5.writer as writer
from caduceus_cli.cli import main
from caduceus_cli.engine import Engine
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.regions import parse_region, read_bed
writer.COMMIT_REGIONS = 1
real_commit, commits = writer.RegionCommits.commit, []
def commit(self):
    real_commit(self)
    commits.append(1)
    if len(commits) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
writer.RegionCommits.commit = commit
sys.argv = ["caduceus", *sys.argv[1:]]
main()
"""


def test_resume_after_sigkill_gives_the_uninterrupted_result(run_cli, tiny_checkpoint, inputs):
    small_ph = tiny_checkpoint("ph")
    fasta, bed, tmp = inputs
    bed.write_text("".join(f"chr1\t{10 * i}\t{10 * i + 150}\tp{i}\t0\t{'+-'[i % 2]}\n" for i in range(8)))
    options = ("--window", 64, "--pool", "mean", "--bin", 16, "--batch-size", 1, "-q")
    args = ["embed", fasta, "-R", bed, "--model", small_ph, *options, "-o"]
    child = [sys.executable, "-c", KILLED_RUN, *map(str, args), tmp / "out.h5"]
    killed = subprocess.run(child, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp / "out.h5").exists()
    with h5py.File(tmp / "out.h5.partial", "r") as partial:  # readable, with the finished regions marked
        assert partial["done"][()].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert run_cli(*args, tmp / "out.h5", "--resume")[0] == 0
    assert run_cli(*args, tmp / "whole.h5")[0] == 0
    assert_same_output(tmp / "out.h5", tmp / "whole.h5")


def test_an_interrupt_says_how_to_resume_and_a_fresh_run_warns_what_it_discards(
    run_cli, monkeypatch, tiny_checkpoint, inputs
):
    small_ph = tiny_checkpoint("ph")
    fasta, bed, tmp = inputs
    real_region_done = RegionCommits.region_done

    def interrupted_at_the_third(self, row, *args):
        if row == 2:
            raise KeyboardInterrupt
        real_region_done(self, row, *args)

    monkeypatch.setattr(RegionCommits, "region_done", interrupted_at_the_third)
    args = ("embed", fasta, "-R", bed, "-r", "chr2:11-50", "--model", small_ph, "-o", tmp / "out.h5", "-q")
    code, _, err = run_cli(*args, "--window", 128)
    assert (code, err.strip()) == (
        130,
        f"caduceus: interrupted; 2 of 4 regions done saved in {tmp / 'out.h5.partial'}; "
        "rerun the same command with --resume to continue",
    )
    monkeypatch.setattr(RegionCommits, "region_done", real_region_done)
    code, _, err = run_cli(*args, "--window", 128)
    assert code == 0
    assert f"{tmp / 'out.h5.partial'}: starting over, discarding an interrupted run's partial file " in err
    assert "(2 of 4 regions done); --resume continues from it instead" in err


def test_refused_resume_keeps_the_partial_file(run_cli, monkeypatch, tiny_checkpoint, inputs):
    small_ph = tiny_checkpoint("ph")
    fasta, bed, tmp = inputs
    monkeypatch.setattr(
        RegionCommits, "region_done", lambda self, *args: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    args = ("embed", fasta, "-R", bed, "--model", small_ph, "-o", tmp / "out.h5")
    assert run_cli(*args, "--window", 128)[0] == 130
    code, _, err = run_cli(*args, "--window", 100, "--resume")
    assert code == 1
    assert "cannot resume, window was 128 and is now 100" in err
    assert (tmp / "out.h5.partial").exists() and not (tmp / "out.h5").exists()


BAD_INPUTS = [
    # (what the test changes, extra options, expected message)
    ("no fasta", (), "nope.fa: FASTA file not found"),
    ("no bed", (), "missing.bed: BED file not found"),
    ("options", ("-r", "chr9:1-10"), "region 'chr9:1-10': contig 'chr9' is not in"),
    ("bed", ("chr9\t0\t10\n",), "peaks.bed:1: contig 'chr9' is not in"),
    ("bed", ("chr1\t0\t700\n",), "peaks.bed:1: end 700 is past the end of chr1 (length 600)"),
    ("bed", ("",), "peaks.bed: BED file has no regions"),
    ("bed", ("chr1\t5\n",), "peaks.bed:1: expected at least 3 columns (chrom start end), found 2"),
    ("fasta", (">chr1\nACGT\n>chr1\nACGT\n",), "ref.fa:3: duplicate contig name 'chr1' (first at line 1)"),
    ("fasta", (">chr1\nAC-GT\n",), "character '-' at offset 2 is not a nucleotide letter"),
    ("fasta", ("",), "ref.fa: FASTA file is empty"),
    ("output exists", (), "out.h5: output exists; use --force to overwrite it"),
    (
        "options",
        ("--overlap", "128"),
        "--overlap 128: must be at least 0 and smaller than --window 128",
    ),
    (
        "options",
        ("--max-output-size", "10K"),
        "output 11.4K exceeds --max-output-size 10.0K; store less with",
    ),
    ("options", ("--max-output-size", "lots"), "--max-output-size lots: expected a size such as 500M"),
    ("options", ("--no-per-base",), "--no-per-base: nothing would be written; add --pool mean or --bin K"),
    ("options", ("--resume",), "out.h5.partial: no partial file to resume; run without --resume"),
]


@pytest.mark.parametrize(("what", "change", "message"), BAD_INPUTS, ids=[b[2][:40] for b in BAD_INPUTS])
def test_bad_input_is_one_error_line_with_its_exit_code_and_no_output(
    run_cli, tiny_checkpoint, inputs, what, change, message
):
    small_ph = tiny_checkpoint("ph")
    fasta, bed, tmp = inputs
    out = tmp / "out.h5"
    options = ["-R", bed, "--window", 128]
    if what == "no fasta":
        fasta = tmp / "nope.fa"
    elif what == "no bed":
        options[1] = tmp / "missing.bed"
    elif what == "bed":
        bed.write_text(change[0])
    elif what == "fasta":
        fasta.write_text(change[0])
        options = ["--window", 128]
    elif what == "output exists":
        out.write_text("keep me")
    else:
        options += change
    code, _, err = run_cli("embed", fasta, *options, "--model", small_ph, "-o", out)
    assert code == (2 if message.startswith("--") else 1)  # an invalid option value is a usage error
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("caduceus: error: ") and message in last_line, err
    assert "Traceback" not in err
    assert not (tmp / "out.h5.partial").exists()
    assert out.exists() == (what == "output exists")
    if what == "output exists":
        assert out.read_text() == "keep me"
