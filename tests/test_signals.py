"""SIGTERM (a cluster's time limit) and Ctrl-C take one path: every command says in one line what it
kept and how to go on, and exits 128 + signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from caduceus_cli import signals

# a command run in a child process whose model waits on its first call until it is sent SIGTERM
STOPPED_RUN = """
import sys, time
import caduceus_cli.scoring.plan as plan
from caduceus_cli.cli import main
ready = sys.argv[1]
def run(self, *args):
    open(ready, "w").close()
    time.sleep(60)
plan.PlanRunner.run = run
sys.argv = ["caduceus", *sys.argv[2:]]
main()
"""


def stopped_by_sigterm(tmp_path: Path, *args: object) -> subprocess.CompletedProcess:
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", STOPPED_RUN, str(ready), *map(str, args)], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=30)
    return subprocess.CompletedProcess(child.args, child.returncode, "", stderr)


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("genome") / "ref.fa"
    path.write_text(">chr1\n" + "ACGTTGCA" * 40 + "\n")
    return path


def test_calibrate_stopped_by_sigterm_keeps_nothing_and_says_how_shards_go_on(tmp_path, genome, tiny_checkpoint):
    out = tmp_path / "bg.tsv.gz"
    done = stopped_by_sigterm(
        tmp_path, "calibrate", genome, "--model", tiny_checkpoint("ph"), "-w", 64, "--sites", 50, "-q", "-o", out
    )
    assert done.returncode == 143
    assert done.stderr == (
        f"caduceus: terminated (SIGTERM); nothing of {out} was kept (written whole or not at all); rerun the same "
        "command, or split it with --shard I/N into parts that each finish in the time limit (a rerun then runs "
        "only the missing parts)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready"]


def test_a_command_without_saved_work_says_to_rerun_it(tmp_path, genome, tiny_checkpoint):
    done = stopped_by_sigterm(
        tmp_path, "ism", genome, "-r", "chr1:1-40", "--model", tiny_checkpoint("ph"), "-w", 64, "-q",
        "-o", tmp_path / "ism.tsv",
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        143, "caduceus: terminated (SIGTERM); no output was kept; rerun the same command\n"
    )  # fmt: skip


def test_a_second_stop_signal_while_the_first_is_handled_is_ignored(monkeypatch):
    with signals.stop_signals():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGINT)  # ignored: the first one's save goes on
        time.sleep(0.01)
        assert signals.exit_code() == 143 and signals.stopped_by() == "terminated (SIGTERM)"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers before it are back


def test_ctrl_c_exits_130_as_before(monkeypatch):
    with signals.stop_signals():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert (signals.exit_code(), signals.stopped_by()) == (130, "interrupted")
