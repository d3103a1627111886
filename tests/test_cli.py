"""`caduceus --version`, `info`, `doctor`, and errors as one line with their exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def test_version_prints_the_package_version(run_cli):
    from caduceus_cli import __version__

    assert run_cli("--version") == (0, f"caduceus-cli {__version__}\n", "")


@pytest.mark.parametrize("option", ["--version", "--help"])
def test_version_and_help_start_without_importing_torch(option):
    """What makes them fast (the benchmarks time it; a timed test would fail on a loaded machine)."""
    probe = (
        f"import sys; from caduceus_cli.cli import main; sys.argv[1:] = [{option!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'h5py' in sys.modules, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stderr.split() == ["False", "False"]


def test_each_listed_help_line_is_how_the_command_describes_itself():
    import importlib

    from caduceus_cli.cli import COMMANDS

    for module, function, help_line in COMMANDS.values():
        docstring = getattr(importlib.import_module(module), function).__doc__
        assert docstring.startswith(help_line)


def test_info_describes_a_checkpoint(run_cli, ps_checkpoint):
    result = run_cli("info", ps_checkpoint)
    assert result.code == 0, result.err
    fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.out.splitlines())
    assert fields["variant"] == "PS"
    assert fields["d_model"] == "16" and fields["n_layer"] == "2"
    assert "reverse-complement equivariant" in fields["RC handling"]


def test_info_reads_the_stored_dtype_from_the_weights(run_cli, tmp_path, ps_checkpoint):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "bf16"
    shutil.copytree(ps_checkpoint, folder)
    state = load_file(folder / "model.safetensors")
    save_file({k: v.bfloat16() if v.is_floating_point() else v for k, v in state.items()}, folder / "model.safetensors")
    for model, dtype in ((ps_checkpoint, "float32"), (folder, "bfloat16")):
        result = run_cli("info", model)
        fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.out.splitlines())
        assert fields["stored dtype"] == dtype


def test_doctor_holds_float64_to_float64_rounding():
    import torch

    from caduceus_cli.commands.doctor import EQUIVARIANCE_TOLERANCE

    assert EQUIVARIANCE_TOLERANCE[torch.float64] <= 1e-9 < EQUIVARIANCE_TOLERANCE[torch.float32] <= 1e-3


def test_doctor_runs_a_forward_pass_on_the_cpu(run_cli):
    result = run_cli("doctor", "--device", "cpu")
    assert result.code == 0, result.err
    threads = len(os.sched_getaffinity(0))
    assert f"scan backend        compiled scan (numba, {threads} threads) on the CPU" in result.out
    assert "forward, Mamba1     ok" in result.out and "forward, Mamba2     ok" in result.out


def test_missing_model_is_one_line_on_stderr_with_exit_1(run_cli, tmp_path):
    result = run_cli("info", tmp_path / "nope" / "deeper")
    assert result.code == 1
    assert result.out == ""
    assert result.err.strip().splitlines() == [
        f"caduceus: error: {tmp_path / 'nope' / 'deeper'}: no such folder"
    ]


def test_unknown_option_is_a_usage_error_with_exit_2(run_cli):
    assert run_cli("info", "--bogus").code == 2


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_asking_for_a_gpu_where_none_is_visible_exits_3(device):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # read when CUDA starts: a fresh process is the point
    result = subprocess.run(
        [sys.executable, "-c", "from caduceus_cli.cli import main; main()", "doctor", "--device", device],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 3
    assert f"--device {device}: no usable CUDA GPU" in result.stderr


def test_every_declared_dependency_is_imported_by_the_package():
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=!~; \[]", spec, maxsplit=1)[0].replace("-", "_").lower() for spec in declared]
    source = "\n".join(path.read_text() for path in (root / "caduceus_cli").rglob("*.py"))
    unused = [name for name in names if not re.search(rf"^\s*(from|import) {name}\b", source, re.MULTILINE)]
    assert unused == []


def test_option_choices_are_the_constants_of_the_modules_that_define_them():
    from caduceus_cli.commands import common, embed, score_variants
    from caduceus_cli.io import hdf5, vcf
    from caduceus_cli.model.caduceus import RC_MODES
    from caduceus_cli.scoring import ON_REF_MISMATCH, SCORES

    def values(enum):
        return tuple(member.value for member in enum)

    assert values(common.Score) == SCORES
    assert values(score_variants.OnRefMismatch) == ON_REF_MISMATCH
    assert values(score_variants.OutputType) == (*vcf.FORMATS, score_variants.TABLE)
    assert values(embed.RcMode) == RC_MODES
    assert values(embed.Pool) == hdf5.POOLS
    assert values(embed.Precision) == tuple(hdf5.PRECISIONS)
    assert values(embed.Compression) == hdf5.COMPRESSIONS
