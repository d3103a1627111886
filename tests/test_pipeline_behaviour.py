"""Pipeline-grade behaviour of every command: what a workflow engine and a shell pipe rely on.

Deterministic bytes, no output left by a failed run, documented exit codes, device selection
that honours CUDA_VISIBLE_DEVICES, data alone on stdout, and logs fit for a file. Most checks
run the real entry point in this process (capfd sees the file descriptors, as a pipe would);
the few that need a fresh environment or a real pipe start `caduceus` as a process.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pysam
import pytest
import torch
from rich.console import Console
from rich.progress import Progress

from caduceus_cli import terminal
from caduceus_cli.engine import Engine
from caduceus_cli.errors import OutOfMemoryError
from caduceus_cli.terminal import counted, format_rate

CADUCEUS = [sys.executable, "-c", "from caduceus_cli.cli import main; main()"]
ANSI_ESCAPE = "\x1b["
rng = np.random.default_rng(21)
CONTIGS = {"chr1": "".join(rng.choice(list("ACGT"), 300)), "chr2": "".join(rng.choice(list("ACGT"), 160))}
HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=300>\n##contig=<ID=chr2,length=160>\n"
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
)


def records(count: int) -> str:
    """`count` SNVs spread along chr1, REF as in the FASTA."""
    chr1 = CONTIGS["chr1"]
    positions = range(3, 300, 300 // count)[:count]
    return "".join(
        f"chr1\t{p}\t.\t{chr1[p - 1]}\t{'G' if chr1[p - 1] != 'G' else 'A'}\t.\t.\t.\n" for p in positions
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pipeline_data")
    (folder / "ref.fa").write_text("".join(f">{name}\n{seq}\n" for name, seq in CONTIGS.items()))
    (folder / "calls.vcf").write_text(HEADER + records(12))
    (folder / "regions.bed").write_text(
        "chr1\t0\t200\ta\t0\t+\nchr2\t20\t160\tb\t0\t-\nchr1\t150\t300\tc\t0\t.\n"
    )
    files = {name: folder / name for name in ("ref.fa", "calls.vcf", "regions.bed")}
    return {**files, "model": tiny_checkpoint("ph", max_length=64)}


def embed_args(data, output: object = "out.h5") -> list[object]:
    return ["embed", data["ref.fa"], "--regions", data["regions.bed"], "--model", data["model"], "-o", output]


def score_args(data, *extra: object, vcf: object = None) -> list[object]:
    vcf = data["calls.vcf"] if vcf is None else vcf
    return ["score-variants", vcf, "--fasta", data["ref.fa"], "--model", data["model"], "-w", 32, *extra]


def shard_files(data, run_cli, folder: Path) -> list[Path]:
    paths = []
    for shard in (1, 2):
        path = folder / f"part{shard}.h5"
        assert run_cli(*embed_args(data, path), "--shard", f"{shard}/2", "-q")[0] == 0
        paths.append(path)
    return paths


def leftovers(folder: Path, before: set[Path]) -> list[str]:
    return sorted(str(p.name) for p in set(folder.iterdir()) - before)


# ---------------------------------------------------------------------------------------------
# Determinism: same input, same bytes (commands run from the same folder name, so even the
# recorded command line is the same)

COMMANDS = {
    "embed": lambda data: embed_args(data),
    "embed-pooled-binned": lambda data: [
        *embed_args(data),
        "--pool",
        "mean",
        "--bin",
        "16",
        "--precision",
        "float32",
    ],
    "score-variants-vcf": lambda data: score_args(data, "-o", "out.vcf"),
    "score-variants-bgzf-indexed": lambda data: score_args(data, "-o", "out.vcf.gz", "--write-index"),
    "score-variants-bcf": lambda data: score_args(
        data, "--score", "llr", "--score", "emb-l2", "-o", "out.bcf"
    ),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_same_input_gives_the_same_bytes(run_cli, name, data, tmp_path, monkeypatch):
    outputs = []
    for attempt in ("first", "second"):
        folder = tmp_path / attempt / "run"
        folder.mkdir(parents=True)
        monkeypatch.chdir(folder)
        assert run_cli(*COMMANDS[name](data), "-q")[0] == 0
        outputs.append({p.name: p.read_bytes() for p in sorted(folder.iterdir())})
    assert outputs[0].keys() == outputs[1].keys() and outputs[0]
    for file_name in outputs[0]:
        assert outputs[0][file_name] == outputs[1][file_name], f"{file_name} differs between two runs"


def test_threads_option_sets_the_thread_count_and_not_the_embeddings(run_cli, data, tmp_path):
    values = []
    for threads in (1, 2):
        path = tmp_path / f"threads{threads}.h5"
        assert run_cli(*embed_args(data, path), "--precision", "float32", "--threads", threads, "-q")[0] == 0
        assert torch.get_num_threads() == threads
        with h5py.File(path) as h5:
            values.append([h5["embeddings"][str(i)][()] for i in range(3)])
    torch.set_num_threads(1)  # the command set the process-wide count; other tests expect one
    for one, two in zip(*values, strict=True):
        np.testing.assert_allclose(one, two, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Failures: documented exit code, one line on stderr, nothing on stdout, no output left behind


def test_out_of_memory_mid_run_exits_4_and_leaves_no_output(run_cli, data, tmp_path, monkeypatch):
    real_map = Engine.map

    def fails_after_one_window(self, windows, *args, **kwargs):
        results = real_map(self, windows, *args, **kwargs)
        yield next(results)
        raise OutOfMemoryError("CUDA out of memory at batch size 1")

    monkeypatch.setattr(Engine, "map", fails_after_one_window)
    for command in (
        embed_args(data, tmp_path / "out.h5"),
        score_args(data, "-o", tmp_path / "out.vcf.gz", "-W"),
    ):
        code, out, err = run_cli(*command, "-q")
        assert (code, out) == (4, "")
        assert err.strip().splitlines() == ["caduceus: error: CUDA out of memory at batch size 1"]
        assert leftovers(tmp_path, set()) == []


def test_malformed_record_late_in_a_vcf_leaves_no_output(run_cli, data, tmp_path):
    vcf = tmp_path / "bad.vcf"
    vcf.write_text(HEADER + records(12) + "chr1\tnot-a-position\t.\tA\tG\t.\t.\t.\n")
    before = set(tmp_path.iterdir())
    for output in ("out.vcf", "out.vcf.gz", "out.bcf"):
        code, out, err = run_cli(*score_args(data, "-o", tmp_path / output, "-q", vcf=vcf))
        assert (code, out) == (1, "")
        assert len(err.strip().splitlines()) == 1 and "bad.vcf" in err
        assert leftovers(tmp_path, before) == []


USAGE_ERRORS = {
    "embed without -o": lambda data: ["embed", data["ref.fa"]],
    "embed unknown option": lambda data: [*embed_args(data), "--no-such-option"],
    "score-variants without --fasta": lambda data: ["score-variants", data["calls.vcf"]],
    "score-variants bad --score": lambda data: score_args(data, "--score", "nonsense"),
    "score-variants bad -O": lambda data: score_args(data, "-O", "x"),
    "merge without inputs": lambda data: ["merge", "-o", "x.h5"],
    "info unknown option": lambda data: ["info", data["model"], "--no-such-option"],
    "doctor unknown option": lambda data: ["doctor", "--no-such-option"],
    "unknown command": lambda data: ["embedd"],
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_errors_exit_2_with_one_line(run_cli, case, data):
    code, out, err = run_cli(*USAGE_ERRORS[case](data))
    assert (code, out) == (2, "")
    assert err.startswith("caduceus: error: ") and err.count("\n") == 1


BAD_OPTION_VALUES = {
    "--threads 0": ["--threads", "0"],
    "--window -2": ["--window", "-2"],
    "--window 0": ["--window", "0"],
    "--shard 3/2": ["--shard", "3/2"],
    "--shard two": ["--shard", "two"],
}


@pytest.mark.parametrize("case", sorted(BAD_OPTION_VALUES))
@pytest.mark.parametrize("command", ["embed", "score-variants"])
def test_bad_option_values_exit_2(run_cli, command, case, data, tmp_path):
    args = embed_args(data, tmp_path / "out.h5") if command == "embed" else score_args(data)
    code, out, _ = run_cli(*args, *BAD_OPTION_VALUES[case])
    assert (code, out) == (2, "")


USAGE_ERRORS_BEFORE_ANY_WORK = {
    "embed -o -": lambda data: embed_args(data, "-"),
    "score-variants --write-index to stdout": lambda data: score_args(data, "--write-index"),
    "score-variants --write-index to plain VCF": lambda data: score_args(
        data, "--write-index", "-o", "x.vcf"
    ),
    "score-variants --shard on stdin": lambda data: score_args(data, "--shard", "1/2", vcf="-"),
    "score-variants negative --emb-flank": lambda data: score_args(data, "--emb-flank", "-1"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS_BEFORE_ANY_WORK))
def test_option_conflicts_exit_2_with_one_line_and_no_output(run_cli, case, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(*USAGE_ERRORS_BEFORE_ANY_WORK[case](data))
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and err.startswith("caduceus: error: ")
    assert list(tmp_path.iterdir()) == []


INPUT_ERRORS = {
    "embed missing FASTA": (lambda data, tmp: ["embed", tmp / "no.fa", "-o", tmp / "o.h5"], "no.fa"),
    "embed missing BED": (
        lambda data, tmp: [*embed_args(data, tmp / "o.h5"), "-R", tmp / "no.bed"],
        "no.bed",
    ),
    "score-variants missing VCF": (lambda data, tmp: score_args(data, vcf=tmp / "no.vcf"), "no.vcf"),
    "score-variants missing model": (lambda data, tmp: score_args(data, "-m", tmp / "no_model"), "no_model"),
    "merge missing shard": (lambda data, tmp: ["merge", tmp / "no.h5", "-o", tmp / "all.h5"], "no.h5"),
    "info missing model": (lambda data, tmp: ["info", tmp / "no_model"], "no_model"),
}


@pytest.mark.parametrize("case", sorted(INPUT_ERRORS))
def test_input_errors_exit_1_with_one_line_naming_the_file(run_cli, case, data, tmp_path):
    make_args, name = INPUT_ERRORS[case]
    code, out, err = run_cli(*make_args(data, tmp_path))
    assert (code, out) == (1, "")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("caduceus: error: ") and name in lines[0]
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Devices


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer when no GPU is usable")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
@pytest.mark.parametrize("command", ["embed", "score-variants", "doctor"])
def test_cuda_device_without_a_gpu_exits_3(run_cli, command, device, data, tmp_path):
    args = {
        "embed": embed_args(data, tmp_path / "out.h5"),
        "score-variants": score_args(data, "-o", tmp_path / "out.vcf"),
        "doctor": ["doctor"],
    }[command]
    code, out, err = run_cli(*args, "--device", device)
    assert code == 3
    assert out == "" or command == "doctor"
    assert err.strip().splitlines() == [
        f"caduceus: error: --device {device}: no usable CUDA GPU (torch {torch.__version__})"
    ]
    assert list(tmp_path.iterdir()) == []


def test_empty_cuda_visible_devices_hides_every_gpu(data, tmp_path):
    """Fresh processes, so that on a GPU machine too the variable decides what CUDA sees."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}

    def caduceus(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*CADUCEUS, *map(str, args)], env=env, capture_output=True, text=True, timeout=120
        )

    auto = caduceus(*score_args(data, "-o", tmp_path / "auto.vcf"))
    assert auto.returncode == 0, auto.stderr
    assert " on cpu in float32" in auto.stderr
    asked = caduceus(*score_args(data, "--device", "cuda:0", "-o", tmp_path / "cuda.vcf"))
    assert (asked.returncode, asked.stdout) == (3, "")
    assert asked.stderr.startswith("caduceus: error: --device cuda:0: no usable CUDA GPU")
    assert [p.name for p in tmp_path.iterdir()] == ["auto.vcf"]


def test_a_local_model_has_revision_none_in_every_output(run_cli, data, tmp_path):
    assert run_cli(*embed_args(data, tmp_path / "out.h5"), "-q")[0] == 0
    with h5py.File(tmp_path / "out.h5") as h5:
        assert h5.attrs["model_revision"] == "none"
    assert run_cli(*score_args(data, "-o", tmp_path / "out.vcf", "-q"))[0] == 0
    header = [line for line in (tmp_path / "out.vcf").read_text().splitlines() if line.startswith("##")]
    assert any(line.startswith("##caduceus_model=") and ";revision=none;" in line for line in header)
    assert any("CADUCEUS_LLR" in line and "(revision none, sha256" in line for line in header)
    code, out, _ = run_cli("info", data["model"])
    assert code == 0 and "\nrevision " in out and out.split("\nrevision ")[1].split("\n")[0].strip() == "none"


# ---------------------------------------------------------------------------------------------
# stdout carries data only; logs are plain text off a terminal, and go to --log-file too


def test_score_variants_in_a_pipe_writes_only_vcf_on_stdout_and_plain_logs_on_stderr(data, tmp_path):
    with open(data["calls.vcf"], "rb") as stdin:
        piped = subprocess.run(
            [*CADUCEUS, *map(str, score_args(data, vcf="-"))],
            stdin=stdin, capture_output=True, timeout=120,
        )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    (tmp_path / "stdout.vcf").write_bytes(piped.stdout)
    with pysam.VariantFile(str(tmp_path / "stdout.vcf")) as vcf:
        assert len([record.info["CADUCEUS_LLR"] for record in vcf]) == 12
    log = piped.stderr.decode()
    assert "caduceus INFO 12 records written" in log
    assert ANSI_ESCAPE not in log and "\r" not in log


@pytest.mark.parametrize("command", ["embed", "merge", "score-variants to a file"])
def test_commands_writing_files_print_nothing_on_stdout(run_cli, command, data, tmp_path):
    args = {
        "embed": lambda: embed_args(data, tmp_path / "out.h5"),
        "merge": lambda: ["merge", *shard_files(data, run_cli, tmp_path), "-o", tmp_path / "all.h5"],
        "score-variants to a file": lambda: score_args(data, "-o", tmp_path / "out.vcf.gz"),
    }[command]()
    code, out, err = run_cli(*args)
    assert (code, out) == (0, "")
    assert " INFO " in err and ANSI_ESCAPE not in err


@pytest.mark.parametrize("command", ["embed", "score-variants", "merge"])
def test_quiet_success_is_silent(run_cli, command, data, tmp_path):
    args = {
        "embed": lambda: embed_args(data, tmp_path / "out.h5"),
        "score-variants": lambda: score_args(data, "-o", tmp_path / "out.vcf"),
        "merge": lambda: ["merge", *shard_files(data, run_cli, tmp_path), "-o", tmp_path / "all.h5"],
    }[command]()
    assert run_cli(*args, "-q") == (0, "", "")


@pytest.mark.parametrize("command", ["embed", "score-variants", "merge"])
def test_log_file_gets_the_log(run_cli, command, data, tmp_path):
    args = {
        "embed": lambda: embed_args(data, tmp_path / "out.h5"),
        "score-variants": lambda: score_args(data, "-o", tmp_path / "out.vcf"),
        "merge": lambda: ["merge", *shard_files(data, run_cli, tmp_path), "-o", tmp_path / "all.h5"],
    }[command]()
    log = tmp_path / "run.log"
    code, _, err = run_cli(*args, "--log-file", log)
    assert code == 0
    text = log.read_text()
    assert " caduceus INFO " in text and ANSI_ESCAPE not in text
    assert all(line in err for line in text.splitlines()), "the file holds what stderr showed"


@pytest.mark.parametrize(
    ("count", "seconds", "shown"),
    [(3, 8, "0.375"), (0, 5, "0"), (25, 2, "12.5"), (1234, 1, "1,234"), (99.96, 1, "100")],
)
def test_rates_keep_three_significant_digits_below_100(count, seconds, shown):
    assert format_rate(count, seconds) == shown


@pytest.mark.parametrize(
    ("count", "noun", "shown"),
    [
        (1, "region", "1 region"), (0, "region", "0 regions"), (18486, "base", "18,486 bases"),
        (2, "A/C/G/T base", "2 A/C/G/T bases"),
    ],  # fmt: skip
)
def test_counts_in_log_lines_have_thousands_separators_and_agree_in_number(count, noun, shown):
    assert counted(count, noun) == shown


def test_an_embed_of_one_region_says_one_region(run_cli, data, tmp_path):
    code, _, err = run_cli("embed", data["ref.fa"], "-r", "chr1:1-150", "--model", data["model"], "-o", tmp_path / "one.h5")
    assert code == 0, err
    assert " INFO 1 region, 150 bases, estimated output " in err
    assert " INFO embed: 150 bases in " in err


def test_score_variants_on_a_terminal_shows_the_records_total_and_each_level_once(run_cli, data, monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(terminal, "stderr", Console(file=screen, force_terminal=True, width=200))
    code, _, err = run_cli(*score_args(data, "-o", "-"))
    assert code == 0, err
    shown = screen.getvalue()
    assert "12/12" in shown and "/?" not in shown
    assert "scores llr" in shown and "INFO:caduceus" not in shown
    assert all(line.count("INFO") <= 1 for line in shown.splitlines())


def test_a_count_without_a_total_is_shown_alone():
    with Progress(*terminal.progress_bar(True, "records").columns) as progress:
        task = progress.add_task("x", total=None, rate="-")
        progress.update(task, advance=7)
        assert [column.render(progress.tasks[task]).plain for column in progress.columns[2:3]] == ["7"]


def test_log_file_records_the_error_that_ended_the_run(run_cli, data, tmp_path):
    log = tmp_path / "run.log"
    code, _, err = run_cli(*score_args(data, "-m", tmp_path / "no_model", "--log-file", log))
    assert code == 1
    assert "no_model" in log.read_text()


def test_a_closed_stdout_ends_the_run_like_bcftools(data):
    reader = subprocess.Popen(
        [*CADUCEUS, *map(str, score_args(data))], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    reader.stdout.close()  # like `| head -0`: the reader is gone before the first record is written
    _, err = reader.communicate(timeout=120)
    assert reader.returncode == -signal.SIGPIPE, err.decode()
