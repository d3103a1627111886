"""`caduceus merge`: joining the shard files of a split embed run (HDF5) or score-variants run (VCF)."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from test_embed_cli import assert_same_output, embed_ok, write_inputs
from test_hdf5 import (
    FULL,
    PROVENANCE,
    REGIONS,
    SETTINGS,
    assert_same_datasets,
    attrs,
    write_file,
    write_regions,
)
from test_workflows import vcf_lines

from caduceus_cli.errors import InputError
from caduceus_cli.io.hdf5.layout import ShardInfo
from caduceus_cli.io.hdf5.writer import EmbeddingFile
from caduceus_cli.pipelines.merge.hdf5 import merge_embeddings


def write_shards(tmp_path, parts, settings=SETTINGS):
    paths = []
    for index, rows in enumerate(parts):
        path = tmp_path / f"shard{index}.h5"
        shard = ShardInfo(index, len(parts), len(REGIONS), np.array(rows))
        regions = [REGIONS[i] for i in rows]
        provenance = {
            **PROVENANCE,
            "command_line": f"{PROVENANCE['command_line']} --shard {index + 1}/{len(parts)}",
        }
        output = EmbeddingFile.create(path, regions, FULL, settings, provenance, shard)
        write_regions(output, regions, range(len(rows)))
        output.finish()
        paths.append(path)
    return paths


def test_merged_shards_equal_a_single_run_and_keep_the_shards_command_lines(tmp_path):
    paths = write_shards(tmp_path, [[0], [1, 2]])
    merge_command = {**PROVENANCE, "command_line": "caduceus merge shard1.h5 shard0.h5 -o merged.h5"}
    merge_embeddings(paths[::-1], tmp_path / "merged.h5", merge_command)
    write_file(tmp_path / "single.h5")
    assert_same_datasets(tmp_path / "merged.h5", tmp_path / "single.h5")
    merged = attrs(tmp_path / "merged.h5")
    assert list(merged.pop("shard_command_lines")) == [
        f"{PROVENANCE['command_line']} --shard {i}/2" for i in (1, 2)
    ]
    assert merged == {**attrs(tmp_path / "single.h5"), "command_line": merge_command["command_line"]}


def test_merge_refuses_missing_repeated_or_mismatched_shards(tmp_path):
    paths = write_shards(tmp_path, [[0], [1, 2]])
    with pytest.raises(InputError, match="shard 2/2 is missing"):
        merge_embeddings(paths[:1], tmp_path / "m.h5", PROVENANCE)
    with pytest.raises(InputError, match=r"shard1.h5: shard 2/2 given twice"):
        merge_embeddings([paths[1], paths[1]], tmp_path / "m.h5", PROVENANCE)
    other = tmp_path / "other"
    other.mkdir()
    foreign = write_shards(other, [[0], [1, 2]], {**SETTINGS, "model_sha256": "zzz"})
    with pytest.raises(InputError, match="model_sha256 is 'zzz' but 'abc'.*cannot be merged"):
        merge_embeddings([paths[0], foreign[1]], tmp_path / "m.h5", PROVENANCE)
    (tmp_path / "junk.h5").write_text("junk")
    with pytest.raises(InputError, match="junk.h5: not a readable HDF5 file"):
        merge_embeddings([paths[0], tmp_path / "junk.h5"], tmp_path / "m.h5", PROVENANCE)


def test_merge_refuses_unsharded_and_unfinished_files(tmp_path):
    write_file(tmp_path / "single.h5")
    with pytest.raises(InputError, match="single.h5: not a shard file"):
        merge_embeddings([tmp_path / "single.h5"], tmp_path / "m.h5", PROVENANCE)
    shard = ShardInfo(0, 1, 3, np.arange(3))
    EmbeddingFile.create(tmp_path / "part.h5", REGIONS, FULL, SETTINGS, PROVENANCE, shard).close()
    with pytest.raises(InputError, match="part.h5: unfinished shard"):
        merge_embeddings([tmp_path / "part.h5"], tmp_path / "m.h5", PROVENANCE)


# --- caduceus merge of embed shards, end to end ---------------------------------------------


@pytest.fixture
def inputs(tmp_path):
    return write_inputs(tmp_path)


def test_shards_merged_equal_a_single_run(run_cli, tiny_checkpoint, inputs):
    small_ps = tiny_checkpoint("ps")
    fasta, bed, tmp = inputs
    options = ("--window", 128, "--pool", "mean", "--bin", 50, "--batch-size", 1)
    embed_ok(run_cli, small_ps, fasta, bed, tmp / "single.h5", *options)
    shards = [tmp / f"part{i}.h5" for i in (1, 2, 3)]
    for i, shard in enumerate(shards, start=1):
        embed_ok(run_cli, small_ps, fasta, bed, shard, *options, "--shard", f"{i}/3")
    with h5py.File(shards[0]) as h5:
        assert h5["shard/index"][()].tolist() == [2]  # the longest region alone balances the other three
    code, _, err = run_cli("merge", *shards[::-1], "-o", tmp / "merged.h5")
    assert code == 0, err
    assert_same_output(tmp / "merged.h5", tmp / "single.h5")
    with h5py.File(tmp / "merged.h5") as h5:
        assert [line.split()[-2:] for line in h5.attrs["shard_command_lines"]] == [
            ["--shard", f"{i}/3"] for i in (1, 2, 3)
        ]


def test_merge_refuses_a_missing_shard(run_cli, tiny_checkpoint, inputs):
    small_ps = tiny_checkpoint("ps")
    fasta, bed, tmp = inputs
    embed_ok(run_cli, small_ps, fasta, bed, tmp / "part1.h5", "--window", 128, "--shard", "1/2")
    code, _, err = run_cli("merge", tmp / "part1.h5", "-o", tmp / "merged.h5")
    assert (code, err.strip()) == (1, "caduceus: error: shard 2/2 is missing from the files to merge")
    assert not (tmp / "merged.h5").exists() and not (tmp / "merged.h5.partial").exists()
    code, _, err = run_cli("merge", tmp / "part1.h5", tmp / "nope.h5", "-o", tmp / "merged.h5")
    assert (code, err.strip()) == (1, f"caduceus: error: {tmp / 'nope.h5'}: shard file not found")


def embed_shards(run_cli, checkpoint, fasta, bed, folder: Path) -> list[Path]:
    shards = [folder / f"part{i}.h5" for i in (1, 2)]
    for i, shard in enumerate(shards, start=1):
        embed_ok(run_cli, checkpoint, fasta, bed, shard, "--window", 128, "-q", "--shard", f"{i}/2")
    return shards


def test_merging_the_same_shards_twice_gives_the_same_bytes(run_cli, tiny_checkpoint, inputs, monkeypatch):
    fasta, bed, tmp = inputs
    shards = embed_shards(run_cli, tiny_checkpoint("ph"), fasta, bed, tmp)
    merged = []
    for attempt in ("first", "second"):  # the same folder name, so even the recorded command line agrees
        folder = tmp / attempt / "run"
        folder.mkdir(parents=True)
        monkeypatch.chdir(folder)
        assert run_cli("merge", *shards, "-o", "all.h5", "-q").code == 0
        merged.append((folder / "all.h5").read_bytes())
    assert merged[0] == merged[1]


def test_merge_of_a_damaged_shard_is_one_error_line_and_leaves_no_output(run_cli, tiny_checkpoint, inputs):
    fasta, bed, tmp = inputs
    shards = embed_shards(run_cli, tiny_checkpoint("ph"), fasta, bed, tmp)
    shards[1].write_bytes(shards[1].read_bytes()[:1000])
    before = set(tmp.iterdir())
    code, out, err = run_cli("merge", *shards, "-o", tmp / "all.h5", "-q")
    assert (code, out) == (1, "")
    assert len(err.strip().splitlines()) == 1 and "part2.h5" in err
    assert set(tmp.iterdir()) == before


# --- caduceus merge of score-variants shards ---------------------------------------------------


def write_shard(folder: Path, shard: str, lines: list[str], model: str = "m1") -> Path:
    path = folder / f"part{shard.replace('/', '-of-')}.vcf"
    header = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr1,length=1000>",
        "##contig=<ID=chr2,length=1000>",
        f"##caduceus_command=caduceus score-variants in.vcf --fasta ref.fa --shard {shard} -o {path.name}",
        f"##caduceus_shard={shard}",
        f"##caduceus_model=source={model}",
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    path.write_text("\n".join(header + lines) + "\n")
    return path


def record(chrom: str, pos: int) -> str:
    return f"{chrom}\t{pos}\t.\tA\tG\t.\t.\t."


def test_merge_orders_vcf_shards_by_the_shard_line_they_hold(run_cli, tmp_path):
    first = write_shard(tmp_path, "1/2", [record("chr1", 5), record("chr1", 9)])
    second = write_shard(tmp_path, "2/2", [record("chr1", 9), record("chr2", 1)])
    assert run_cli("merge", "-o", tmp_path / "all.vcf.gz", second, first).code == 0
    header, lines = vcf_lines(tmp_path / "all.vcf.gz")
    assert lines == [record("chr1", 5), record("chr1", 9), record("chr1", 9), record("chr2", 1)]
    assert "##caduceus_model=source=m1" in header
    assert "##caduceus_shard" not in header  # the merged file is the single run's, not a shard
    assert (tmp_path / "all.vcf.gz.tbi").is_file()


def test_merge_imports_no_model_code():
    """A merge job on a login node starts without torch (about a second of imports)."""
    import subprocess
    import sys

    probe = "import sys, caduceus_cli.commands.merge; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize(
    "problem, message",
    [
        ("missing", "shard 2/3 is missing"),
        ("repeated", "given twice"),
        ("other model", "differs from"),
        ("unsorted", "chr1:4 comes after chr1:5"),
        ("contig again", "chr1:9 comes after chr2:1"),
    ],
)
def test_merge_refuses_vcf_shards_that_cannot_be_one_run_and_leaves_no_output(
    problem, message, run_cli, tmp_path
):
    shards = {
        "missing": lambda: [("1/3", [record("chr1", 1)]), ("3/3", [record("chr1", 2)])],
        "repeated": lambda: [("1/2", [record("chr1", 1)]), ("1/2", [record("chr1", 1)])],
        "unsorted": lambda: [("1/2", [record("chr1", 5)]), ("2/2", [record("chr1", 4)])],
        "contig again": lambda: [
            ("1/2", [record("chr1", 5), record("chr2", 1)]),
            ("2/2", [record("chr1", 9)]),
        ],
        "other model": lambda: [("1/2", [record("chr1", 1)]), ("2/2", [record("chr1", 2)])],
    }[problem]()
    folders = [tmp_path / str(number) for number in range(len(shards))]
    paths = []
    for number, (folder, (shard, lines)) in enumerate(zip(folders, shards, strict=True)):
        folder.mkdir()
        paths.append(
            write_shard(folder, shard, lines, model="m2" if problem == "other model" and number else "m1")
        )
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run_cli("merge", "-o", out / "all.vcf.gz", *paths)
    assert code == 1 and len(err.strip().splitlines()) == 1 and message in err
    assert list(out.iterdir()) == []


def test_merge_given_a_file_that_is_no_shard_names_it_not_the_output(run_cli, tmp_path):
    fasta = Path(__file__).resolve().parents[1] / "examples" / "example.fa"
    result = run_cli("merge", fasta, "-o", tmp_path / "all.h5")
    assert result == (
        1, "",
        f"caduceus: error: {fasta}: not a shard of caduceus embed, score-variants, track or calibrate "
        "(merge joins the outputs of one --shard I/N run)\n",
    )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
