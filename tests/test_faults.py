"""What a cluster does to a run, injected: a write error at each stage of each command writing a file
(header, body, close, index, rename), a second run on an output being written, SIGTERM (a time
limit) and SIGKILL at a random point of an embed run. Each must end in one line with nothing at the
output's names; embed's partial file must stay resumable.

Errors are injected where our code meets the writing library, so the tests run anywhere; the real
thing (a small filesystem filled up) is checked too where this machine lets a test mount one.
"""

from __future__ import annotations

import errno
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pysam
import pytest
from pysam.libcbgzf import BGZFile
from test_embed_cli import assert_same_output, write_fasta
from test_merge import record, write_shard

import caduceus_cli.io.hdf5.chunks as chunks
import caduceus_cli.io.hdf5.files as files
import caduceus_cli.io.hdf5.writer as writer
import caduceus_cli.io.outputs as outputs
import caduceus_cli.io.tables as tables
import caduceus_cli.io.tracks as tracks
import caduceus_cli.io.vcf as vcf
from caduceus_cli.io.hdf5.resume import partial_progress

NO_SPACE = os.strerror(errno.ENOSPC)
IO_ERROR = os.strerror(errno.EIO)
rng = np.random.default_rng(11)
CONTIGS = {"chr1": "".join(rng.choice(list("ACGT"), 1200)), "chr2": "".join(rng.choice(list("ACGT"), 400))}
# eight regions, so a run stopped part-way has finished some and not others
BED = "".join(f"chr1\t{120 * i}\t{120 * i + 150}\tr{i}\t0\t{'+-'[i % 2]}\n" for i in range(8))
EMBED_OPTIONS = ("--window", 64, "--pool", "mean", "--bin", 16, "--batch-size", 1, "-q")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faults")
    fasta = write_fasta(folder / "ref.fa", CONTIGS)
    pysam.faidx(str(fasta))  # made now: an index built during a test would meet the injected faults
    (folder / "regions.bed").write_text(BED)
    records = [f"chr1\t{pos}\t.\t{CONTIGS['chr1'][pos - 1]}\tN\t.\t.\t.\n" for pos in range(100, 1100, 25)]
    header = "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1200>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    (folder / "calls.vcf").write_text(header + "".join(r.replace("\tN\t", f"\t{alt(r)}\t") for r in records))
    write_shard(folder, "1/2", [record("chr1", pos) for pos in (10, 20, 30)])
    write_shard(folder, "2/2", [record("chr1", pos) for pos in (40, 50)])
    return folder


def alt(line: str) -> str:
    return "A" if line.split("\t")[3] != "A" else "C"


@pytest.fixture
def model(tiny_checkpoint) -> Path:
    return tiny_checkpoint("ph")


def embed_args(data: Path, model: Path, out: Path) -> tuple:
    return ("embed", data / "ref.fa", "-R", data / "regions.bed", "--model", model, *EMBED_OPTIONS, "-o", out)


# ---------------------------------------------------------------------------------------------
# the libraries' writers, failing at one stage


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, NO_SPACE)


def on_call(number: int, real):
    """`real`, except that call `number` (1-based) and later ones fail with ENOSPC."""
    calls = []

    def call(*args, **kwargs):
        calls.append(1)
        if len(calls) >= number:
            no_space()
        return real(*args, **kwargs)

    return call


class FaultyBGZF:
    """htslib's BGZF writer failing as pysam reports it: OSError without the system's reason."""

    stage = ""

    def __init__(self, *args):
        self._real = BGZFile(*args)
        self._writes = 0

    def write(self, data):
        self._writes += 1
        if (self.stage, self._writes) in (("header", 1), ("body", 3)):
            raise OSError("BGZFile write failed")
        return self._real.write(data)

    def close(self):
        self._real.close()
        if self.stage == "close":
            raise OSError("Error closing BGZFile object")


class FaultyBigWig:
    """pyBigWig's writer failing as it does: RuntimeError from its calls, and a close that leaves a
    truncated file and returns None."""

    def __init__(self, real, path: str, stage: str):
        self._real, self._path, self._stage = real, path, stage

    def addHeader(self, *args, **kwargs):  # noqa: N802 (pyBigWig's name)
        if self._stage == "header":
            raise RuntimeError("Received an error while adding the header.")
        return self._real.addHeader(*args, **kwargs)

    def addEntries(self, *args, **kwargs):  # noqa: N802
        return self._real.addEntries(*args, **kwargs)

    def close(self):
        self._real.close()
        if self._stage == "close":
            os.truncate(self._path, os.path.getsize(self._path) // 2)


class FaultyFile:
    """open() of a table whose file fails at one stage."""

    def __init__(self, stage: str):
        self.stage = stage

    def __call__(self, path, mode):
        stage = self.stage

        class File(io.FileIO):
            writes = 0

            def write(self, data):
                File.writes += 1
                if (stage, File.writes) in (("header", 1), ("body", 2)):
                    no_space()
                return super().write(data)

            def close(self):
                closed = self.closed
                super().close()
                if stage == "close" and not closed:
                    no_space()

        return File(path, mode)


def fail_rename(suffixes: tuple[str, ...]):
    """os.replace failing (EIO, as on a failing NFS server) for a temporary file ending so."""
    real = os.replace

    def replace(source, target):
        if str(source).endswith(suffixes):
            raise OSError(errno.EIO, IO_ERROR, str(source))
        return real(source, target)

    return replace


def inject_hdf5(monkeypatch, stage: str) -> None:
    if stage == "header":
        monkeypatch.setattr(writer, "write_regions", no_space)
    elif stage == "body":  # the disk fills up in the fourth region: the room check stops the run
        monkeypatch.setattr(writer, "COMMIT_REGIONS", 1)
        monkeypatch.setattr(writer, "ensure_space", on_call(12, writer.ensure_space))
    elif stage == "close":

        def failing_close(h5, path):
            files.abandon(h5, path)  # what a failed flush before closing does
            no_space()

        monkeypatch.setattr(writer, "close_written", failing_close)


def inject_vcf(monkeypatch, stage: str) -> None:
    # htslib does not pass the system's reason on: the full disk itself says what it was
    monkeypatch.setattr(outputs, "_free_bytes", lambda path: 0)
    monkeypatch.setattr(FaultyBGZF, "stage", stage)
    monkeypatch.setattr(vcf, "BGZFile", FaultyBGZF)
    if stage == "index":
        error = pysam.utils.SamtoolsError("bcftools returned with error 1: index: failed to create index")
        monkeypatch.setattr(vcf.pysam.bcftools, "index", lambda *args: (_ for _ in ()).throw(error))


def inject_bigwig(monkeypatch, stage: str) -> None:
    if stage == "body":  # the disk fills up: the room check stops the run before libBigWig fails
        monkeypatch.setattr(tracks, "ensure_space", on_call(3, tracks.ensure_space))
        return
    real = tracks.pybigwig()

    class Module:
        @staticmethod
        def open(path, mode="r"):
            return FaultyBigWig(real.open(path, mode), path, stage) if mode == "w" else real.open(path)

    monkeypatch.setattr(tracks, "pybigwig", lambda: Module)


def inject_table(monkeypatch, stage: str) -> None:
    monkeypatch.setattr(tables, "open", FaultyFile(stage), raising=False)


# command -> (its arguments with the output last, output name, companion suffixes, fault injector)
COMMANDS = {
    "embed": (lambda d, m: embed_args(d, m, "out.h5")[:-1], "out.h5", (), inject_hdf5),
    "score-variants": (
        lambda d, m: ("score-variants", d / "calls.vcf", "--fasta", d / "ref.fa", "--model", m, "-w", 64, "-q",
                      "--write-index", "-o"),
        "out.vcf.gz",
        vcf.INDEX_SUFFIXES,
        inject_vcf,
    ),
    "track": (
        lambda d, m: ("track", d / "ref.fa", "--model", m, "--window", 64, "-q", "-o"), "out.bw", (), inject_bigwig
    ),
    "ism": (
        lambda d, m: ("ism", d / "ref.fa", "-r", "chr1:1-300", "--model", m, "-w", 64, "-q", "-o"),
        "out.tsv",
        (),
        inject_table,
    ),
    "merge": (
        lambda d, m: ("merge", d / "part1-of-2.vcf", d / "part2-of-2.vcf", "-o"),
        "out.vcf.gz",
        vcf.INDEX_SUFFIXES,
        inject_vcf,
    ),
}
STAGES = ("header", "body", "close", "index", "rename")
CASES = [
    (command, stage)
    for command in COMMANDS
    for stage in STAGES
    if stage != "index" or COMMANDS[command][2]  # only outputs with an index have that stage
]
REASONS = {
    "rename": IO_ERROR,
    ("track", "header"): "libBigWig: Received an error while adding the header.",
    ("track", "close"): "libBigWig could not finish the file",
}


@pytest.mark.parametrize(("command", "stage"), CASES)
def test_a_write_error_at_any_stage_is_one_line_and_leaves_nothing(
    run_cli, monkeypatch, data, model, tmp_path, command, stage
):
    args, name, companions, inject = COMMANDS[command]
    out = tmp_path / name
    inject(monkeypatch, stage)
    if stage == "rename":  # the last rename of the commit: the index's when there is one
        monkeypatch.setattr(outputs.os, "replace", fail_rename(tuple(f".partial{s}" for s in companions) or (".partial",)))
    code, stdout, stderr = run_cli(*args(data, model), out)
    reason = REASONS.get(stage, REASONS.get((command, stage), NO_SPACE))
    assert (code, stdout) == (1, "")
    assert stderr.count("\n") == 1 and stderr.startswith(f"caduceus: error: {out}: cannot write: {reason}"), stderr
    assert not out.exists() and not any(Path(f"{out}{suffix}").exists() for suffix in companions)
    assert not outputs.lock_path(out).exists()
    if command != "embed":
        assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_embed_stopped_by_a_full_disk_resumes_to_the_uninterrupted_result(
    run_cli, monkeypatch, data, model, tmp_path
):
    args = embed_args(data, model, tmp_path / "out.h5")
    inject_hdf5(monkeypatch, "body")
    code, _, stderr = run_cli(*args)
    assert code == 1
    assert stderr.strip() == (
        f"caduceus: error: {tmp_path / 'out.h5'}: cannot write: {NO_SPACE}; 3 of 8 regions done saved in "
        f"{tmp_path / 'out.h5.partial'}; make room and rerun the same command with --resume"
    )
    monkeypatch.undo()  # room again
    code, _, stderr = run_cli(*args, "--resume")
    assert code == 0, stderr
    assert run_cli(*embed_args(data, model, tmp_path / "whole.h5")).code == 0
    assert_same_output(tmp_path / "out.h5", tmp_path / "whole.h5")


def test_a_write_failing_inside_hdf5_closes_the_file_without_a_crash(run_cli, monkeypatch, data, model, tmp_path):
    # past the room check (a quota, an I/O error): the file is closed detached from the disk
    monkeypatch.setattr(chunks.ChunkAppender, "_put", on_call(5, chunks.ChunkAppender._put))
    code, _, stderr = run_cli(*embed_args(data, model, tmp_path / "out.h5"))
    assert code == 1 and stderr.count("\n") == 1
    assert stderr.startswith(f"caduceus: error: {tmp_path / 'out.h5'}: cannot write: {NO_SPACE}; ")


def test_writing_to_a_full_stdout_is_one_line(run_cli, monkeypatch, data, model):
    with open("/dev/full", "w") as full:  # every write: ENOSPC
        monkeypatch.setattr(sys, "stdout", full)
        code, _, stderr = run_cli(*COMMANDS["ism"][0](data, model), "-")
    assert (code, stderr) == (1, f"caduceus: error: stdout: cannot write: {NO_SPACE}\n")


# ---------------------------------------------------------------------------------------------
# processes: a second writer, SIGTERM and SIGKILL

# embed in a child process that commits after every region (COMMIT_REGIONS = 1), notes each commit
# in the file argv[1] and writes slowly (10 ms a tile), so a test can act while it runs; with a file
# argv[2] it waits after its first commit until that file exists.
CHILD_RUN = """
import os, sys, time
import caduceus_cli.io.hdf5.writer as writer
from caduceus_cli.cli import main
writer.COMMIT_REGIONS = 1
notes, go = sys.argv[1], sys.argv[2]
real_commit, real_add = writer.RegionCommits.commit, writer.RegionWriter.add
def commit(self):
    real_commit(self)
    with open(notes, "a") as handle:
        handle.write("commit\\n")
    while go and not os.path.exists(go):
        time.sleep(0.01)
def add(self, *args):
    time.sleep(0.01)
    real_add(self, *args)
writer.RegionCommits.commit, writer.RegionWriter.add = commit, add
sys.argv = ["caduceus", *sys.argv[3:]]
main()
"""


def start_child(tmp_path: Path, args: tuple, go: str = "") -> tuple[subprocess.Popen, Path]:
    notes = tmp_path / "commits"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_RUN, str(notes), go, *map(str, args)], stderr=subprocess.PIPE, text=True
    )
    return child, notes


def wait_for_commits(child: subprocess.Popen, notes: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while not (notes.exists() and notes.read_text().count("commit") >= count):
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline, "the child made no progress"
        time.sleep(0.01)


def test_a_second_run_on_an_output_being_written_refuses_and_the_first_finishes(run_cli, data, model, tmp_path):
    args = embed_args(data, model, tmp_path / "out.h5")
    child, notes = start_child(tmp_path, args, go=str(tmp_path / "go"))
    wait_for_commits(child, notes, 1)
    partial = tmp_path / "out.h5.partial"
    before = partial.stat()
    for again in (args, (*args, "--resume"), (*args, "--force")):
        code, _, stderr = run_cli(*again)
        assert code == 1
        assert stderr.startswith(f"caduceus: error: {partial}: in use by another caduceus run (pid {child.pid} on ")
        assert stderr.strip().endswith("; wait for it or write elsewhere") and stderr.count("\n") == 1
    assert partial.stat().st_mtime_ns == before.st_mtime_ns and partial.stat().st_size == before.st_size
    (tmp_path / "go").touch()
    assert child.wait(timeout=60) == 0, child.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["commits", "go", "out.h5"]
    assert run_cli(*embed_args(data, model, tmp_path / "whole.h5")).code == 0
    assert_same_output(tmp_path / "out.h5", tmp_path / "whole.h5")


def test_sigterm_saves_the_finished_regions_says_how_to_resume_and_exits_143(run_cli, data, model, tmp_path):
    args = embed_args(data, model, tmp_path / "out.h5")
    child, notes = start_child(tmp_path, args)
    wait_for_commits(child, notes, 3)
    time.sleep(0.005)  # within the next region's tiles, between two commits
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 143  # as Ctrl-C's 130: the command's own exit, not a death by the signal
    done = partial_progress(tmp_path / "out.h5.partial")
    assert done is not None and 3 <= done[0] < 8  # the commits seen, and any region finished since
    assert child.stderr.read().strip() == (
        f"caduceus: terminated (SIGTERM); {done[0]} of 8 regions done saved in {tmp_path / 'out.h5.partial'}; "
        "rerun the same command with --resume to continue"
    )
    assert not outputs.lock_path(tmp_path / "out.h5").exists()  # released on the way out
    code, _, stderr = run_cli(*args, "--resume")
    assert code == 0, stderr
    assert run_cli(*embed_args(data, model, tmp_path / "whole.h5")).code == 0
    assert_same_output(tmp_path / "out.h5", tmp_path / "whole.h5")


def test_a_run_killed_at_a_random_point_resumes_to_the_uninterrupted_result(run_cli, data, model, tmp_path):
    chance = random.Random(2)
    args = embed_args(data, model, tmp_path / "out.h5")
    child, notes = start_child(tmp_path, args)
    wait_for_commits(child, notes, chance.randint(1, 5))
    time.sleep(chance.uniform(0, 0.02))  # within the next region's tiles, between two commits
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL  # the shell reports 128 + 9 = 137
    assert not (tmp_path / "out.h5").exists() and (tmp_path / "out.h5.partial").exists()
    assert outputs.lock_path(tmp_path / "out.h5").exists()  # left by the dead process, locked by none
    code, _, stderr = run_cli(*args, "--resume")
    assert code == 0, stderr
    assert run_cli(*embed_args(data, model, tmp_path / "whole.h5")).code == 0
    assert_same_output(tmp_path / "out.h5", tmp_path / "whole.h5")
    assert not outputs.lock_path(tmp_path / "out.h5").exists()


# ---------------------------------------------------------------------------------------------
# a real full disk, where a test may mount a small filesystem (root on Linux)


@pytest.fixture
def small_disk(tmp_path):
    """A 5 MiB tmpfs, grown by calling the returned function; skipped where it cannot be mounted."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small filesystem needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", folder], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder, lambda: subprocess.run(["mount", "-o", "remount,size=64m", folder], check=True)
    finally:
        subprocess.run(["umount", "-l", folder], check=False)


def test_a_real_full_disk_stops_embed_and_track_cleanly_and_embed_resumes(run_cli, model, tmp_path, small_disk):
    folder, grow = small_disk
    big = {f"c{i}": "".join(np.random.default_rng(i).choice(list("ACGT"), 70_000)) for i in range(3)}
    fasta = write_fasta(tmp_path / "big.fa", big)
    args = ("embed", fasta, "--model", model, "--window", 1024, "-q", "-o")
    code, _, stderr = run_cli(*args, folder / "e.h5")  # 16 bytes a base: 3.2 MiB, and SPACE_MARGIN kept free
    assert code == 1 and stderr.count("\n") == 1 and f"cannot write: {NO_SPACE} (" in stderr
    assert "regions done saved in" in stderr and not (folder / "e.h5").exists()
    code, _, stderr = run_cli("track", fasta, "--model", model, "--window", 1024, "-q", "-o", folder / "t.bw")
    assert code == 1 and stderr.startswith(f"caduceus: error: {folder / 't.bw'}: cannot write: {NO_SPACE}")
    assert sorted(p.name for p in folder.iterdir()) == ["e.h5.partial"]
    grow()
    assert run_cli(*args, folder / "e.h5", "--resume").code == 0
    assert run_cli(*args, tmp_path / "whole.h5").code == 0
    assert_same_output(folder / "e.h5", tmp_path / "whole.h5")
