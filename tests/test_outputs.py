"""`committed`: the one way outputs reach their name (temporary file, companions, rename on success)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from caduceus_cli.errors import OutputError
from caduceus_cli.io.outputs import (
    SPACE_MARGIN,
    claimed,
    committed,
    ensure_space,
    failure_reason,
    partial_path,
)


def test_success_renames_the_output_and_its_companions_and_drops_a_stale_one(tmp_path):
    out = tmp_path / "out.vcf.gz"
    (tmp_path / "out.vcf.gz.csi").write_text("stale index of an earlier run")
    with committed(out, companions=(".tbi", ".csi")) as temporary:
        assert temporary == partial_path(out) and not out.exists()
        temporary.write_text("data")
        (tmp_path / "out.vcf.gz.partial.tbi").write_text("index")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.vcf.gz", "out.vcf.gz.tbi"]
    assert out.read_text() == "data" and (tmp_path / "out.vcf.gz.tbi").read_text() == "index"


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_failure_leaves_nothing_and_an_interrupt_keeps_only_a_resumable_partial(tmp_path, error):
    out = tmp_path / "out.h5"
    for keep in (False, True):
        with pytest.raises(error), committed(out, companions=(".idx",), resumable=keep) as temp:
            temp.write_text("half")
            (tmp_path / "out.h5.partial.idx").write_text("half index")
            raise error
        kept = keep and error is KeyboardInterrupt
        assert sorted(p.name for p in tmp_path.iterdir()) == (["out.h5.partial"] if kept else [])
        partial_path(out).unlink(missing_ok=True)


def test_unique_temporary_names_get_the_asked_mode(tmp_path):
    out = tmp_path / "ref.fa.fai"
    with committed(out, unique=True, mode=0o644) as first, committed(out, unique=True) as second:
        assert first != second and first.parent == tmp_path
        first.write_text("index")
        second.write_text("index")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["ref.fa.fai"]


def test_a_write_error_is_one_line_naming_the_output_and_a_resumable_partial_stays(tmp_path):
    out = tmp_path / "out.h5"
    for resumable in (False, True):
        with pytest.raises(OutputError) as stopped, committed(out, resumable=resumable) as temporary:
            temporary.write_text("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        assert str(stopped.value) == f"{out}: cannot write: No space left on device"
        assert sorted(p.name for p in tmp_path.iterdir()) == (["out.h5.partial"] if resumable else [])


def test_a_rename_failing_after_the_output_is_in_place_takes_it_and_its_index_away(tmp_path, monkeypatch):
    out, real_replace = tmp_path / "out.vcf.gz", os.replace

    def replace(source, target):
        if str(source).endswith(".tbi"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    failed = pytest.raises(OutputError, match="out.vcf.gz: cannot write: Input/output error")
    with failed, committed(out, companions=(".tbi",)) as temporary:
        temporary.write_text("data")
        Path(f"{temporary}.tbi").write_text("index")
    assert list(tmp_path.iterdir()) == []


def test_an_output_held_by_another_process_is_refused_and_a_dead_holders_lock_is_not(tmp_path):
    out = tmp_path / "out.h5"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(OutputError) as refused, committed(out):
        pass
    assert str(refused.value).startswith(f"{out}.partial: in use by another caduceus run (pid {holder.pid} on ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5.partial", "out.h5.partial.lock"]
    holder.kill()  # its lock file stays; the kernel released the lock
    holder.wait()
    with claimed(out), committed(out) as temporary:  # a claim of this process passes its own committed()
        temporary.write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


# a process holding an output's claim, with its partial file begun, until killed
HOLD = """
import sys
from pathlib import Path
from caduceus_cli.io.outputs import committed
with committed(Path(sys.argv[1])) as temporary:
    temporary.write_text("half")
    print("held", flush=True)
    sys.stdin.read()
"""


def test_room_is_checked_before_a_write_and_reported_with_the_sizes(tmp_path, monkeypatch):
    def disk_with(blocks: int):
        return lambda path: os.statvfs_result((4096, 4096, 10**6, blocks, blocks, 0, 0, 0, 0, 255))

    monkeypatch.setattr(os, "statvfs", disk_with(SPACE_MARGIN // 4096 + 1))  # the margin and one block
    ensure_space(tmp_path / "out.h5", 4096)
    with pytest.raises(OSError) as full:
        ensure_space(tmp_path / "out.h5", 4097)
    free = SPACE_MARGIN + 4096
    assert (full.value.errno, full.value.strerror) == (
        errno.ENOSPC,
        f"No space left on device ({free:,} bytes free, {SPACE_MARGIN + 4097:,} needed)",
    )
    monkeypatch.setattr(os, "statvfs", disk_with(0))  # htslib gives no reason: the full disk does
    assert failure_reason(OSError("BGZFile write failed"), tmp_path / "out.vcf.gz") == "No space left on device"
