"""`committed`: the one way outputs reach their name (temporary file, companions, rename on success)."""

from __future__ import annotations

import os
import stat

import pytest

from caduceus_cli.io.outputs import committed, partial_path


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
