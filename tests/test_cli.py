"""`caduceus --version`, `info`, `doctor`, and errors as one line with their exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from caduceus_cli.cli import COMMANDS, load_command


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
    from caduceus_cli.commands import embed, options, score_variants
    from caduceus_cli.io import vcf
    from caduceus_cli.io.hdf5 import layout
    from caduceus_cli.model.caduceus import RC_MODES
    from caduceus_cli.scoring.settings import ON_REF_MISMATCH, SCORES
    from caduceus_cli.scoring.tracks import TRACK_SCORES

    def values(enum):
        return tuple(member.value for member in enum)

    assert values(options.VariantScore) == SCORES
    assert values(options.TrackScore) == TRACK_SCORES
    assert values(score_variants.OnRefMismatch) == ON_REF_MISMATCH
    assert values(score_variants.OutputType) == (*vcf.FORMATS, score_variants.TABLE)
    assert values(embed.RcMode) == RC_MODES
    assert values(embed.Pool) == layout.POOLS
    assert values(embed.Precision) == tuple(layout.PRECISIONS)
    assert values(embed.Compression) == layout.COMPRESSIONS


EXAMPLE_FASTA = Path(__file__).resolve().parents[1] / "examples" / "example.fa"
EXAMPLE_VCF = EXAMPLE_FASTA.with_name("example.vcf")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("embed", EXAMPLE_FASTA, "-o", "x.h5", "--window", "abc"), "--window abc: not a whole number"),
        (("embed", EXAMPLE_FASTA, "-o", "x.h5", "--rc", "sideways"), "--rc sideways: choose auto, none or average"),
        (("embed", EXAMPLE_FASTA, "-o", "x.h5", "--bin", "0"), "--bin 0: must be at least 1"),
        (("embed", EXAMPLE_FASTA), "embed: -o/--output is required (caduceus embed -h lists the options)"),
        (("embed", "-o", "x.h5"), "embed: FASTA is required (caduceus embed -h lists the options)"),
        (("embed", EXAMPLE_FASTA, "-o", "x.h5", "--zzz"), "embed: no option --zzz (caduceus embed -h lists the options)"),
        (("embed", EXAMPLE_FASTA, "-o"), "-o needs a value"),
        (
            ("calibrate", EXAMPLE_FASTA, "-o", "bg.tsv.gz", "-n", "20,000"),
            "-n/--sites 20,000: not a whole number (write it without commas: 20000)",
        ),
        (
            ("score-variants", "--probs", "true", EXAMPLE_VCF, "--fasta", EXAMPLE_FASTA),
            f"score-variants: unexpected argument {EXAMPLE_VCF} (caduceus score-variants -h lists the options)",
        ),
        (("score-variants", "-O", "x", "--fasta", EXAMPLE_FASTA), "-O/--output-type x: choose v, z, b or t"),
        (("ism", EXAMPLE_FASTA, "-r", "Chr1:1-9", "-o", "-", "--mode", "fast"), "--mode fast: choose unmasked or masked"),
        (("track", EXAMPLE_FASTA, "-o", "t.bw", "-@", "two"), "-@/--threads two: not a whole number"),
        (("frobnicate",), f"no command frobnicate; the commands are {', '.join(COMMANDS)}"),
    ],
)
def test_option_parser_errors_are_one_line_in_the_tools_words_with_exit_2(run_cli, tmp_path, monkeypatch, args, line):
    monkeypatch.chdir(tmp_path)
    assert run_cli(*args) == (2, "", f"caduceus: error: {line}\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_names_values_as_bcftools_does_and_flags_take_none(run_cli, name):
    """Every option's value has a placeholder a reader understands (FILE, N, chr:start-end), and a flag
    shows none: Typer's own `<bool>`, `<int>`, `<path>`, `{fasta}` or `list[...]` never appear."""
    result = run_cli(name, "-h")
    assert result.code == 0
    typer_placeholder = r"<(bool|int|float|str|path|list\[.*?\]|[a-z0-9-]+(\|[a-z0-9-]+)+)>|\{[a-z_]+\}"
    assert not re.search(typer_placeholder, result.out), result.out
    command = load_command(name)
    for param in command.params:
        if param.param_type_name == "option" and not param.is_flag:
            assert param.metavar, f"{name} {param.opts}: no placeholder"
    usage = result.out.split("Usage:", 1)[1].split("\n", 1)[0]
    assert "{" not in usage and usage.split()[1] == name


def test_the_root_help_and_version_flags_show_no_placeholder(run_cli):
    result = run_cli("-h")
    assert result.code == 0 and "<bool>" not in result.out
    assert re.search(r"--version\s+Print the version", result.out)


@pytest.fixture
def model_never_loads(monkeypatch):
    """Loading a model fails the test: what it guards is refused before the weights are read."""
    from caduceus_cli.commands import runtime

    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(runtime, "open_model", load)


@pytest.mark.parametrize(
    ("args", "blocked", "line"),
    [
        (("embed", "-o", "x.h5", "--window", "-5"), None, "--window -5: must be at least 1"),
        (
            ("embed", "-o", "x.h5", "--overlap", "2000"),  # the shipped model's window is 1,024
            None,
            "--overlap 2000: must be at least 0 and smaller than --window 1024",
        ),
        (
            ("track", "-o", "t.bw", "--window", "64", "--overlap", "64"),
            None,
            "--overlap 64: must be at least 0 and smaller than --window 64",
        ),
        (
            ("calibrate", "-o", "bg.tsv.gz", "--max-indel", "600"),
            None,
            "--max-indel 600: an indel is scored when it spans at most W/2 = 512",
        ),
        (
            ("embed", "-o", "x.h5", "--compression", "bitshuffle"),
            "hdf5plugin",
            "--compression bitshuffle (and every program that reads the file) needs the hdf5plugin package: "
            "pip install hdf5plugin; or use --compression gzip",
        ),
        (
            ("track", "-o", "t.bw"),
            "pyBigWig",
            "bigWig output needs the pyBigWig package: pip install pyBigWig; "
            "or write bgzipped bedGraph (-o NAME.bedgraph.gz)",
        ),
        (
            ("ism", "-r", "Chr1:1-20", "-o", "ism.tsv", "--plot", "ism.png"),
            "matplotlib",
            "--plot needs the matplotlib package: pip install matplotlib; "
            "or leave --plot out and plot the table yourself",
        ),
    ],
)
def test_option_errors_are_found_before_the_model_loads(
    run_cli, tmp_path, monkeypatch, model_never_loads, args, blocked, line
):
    if blocked is not None:
        monkeypatch.setitem(sys.modules, blocked, None)  # import now raises ImportError
    monkeypatch.chdir(tmp_path)
    command, *rest = args
    assert run_cli(command, EXAMPLE_FASTA, *rest) == (2, "", f"caduceus: error: {line}\n")
    assert list(tmp_path.iterdir()) == []


def test_ism_refuses_a_second_region_instead_of_using_only_the_last(run_cli, tmp_path, model_never_loads):
    result = run_cli("ism", EXAMPLE_FASTA, "-r", "Chr1:1-10", "-r", "Chr1:20-30", "-o", tmp_path / "ism.tsv")
    assert result == (
        2, "", "caduceus: error: -r given 2 times (Chr1:1-10, Chr1:20-30): ism scores one region; run it once per region\n"
    )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_run_on_the_shipped_model_says_it_is_a_demonstration_and_names_real_checkpoints(
    run_cli, tmp_path, tiny_checkpoint
):
    from caduceus_cli.commands.runtime import SHIPPED_MODEL_NOTE

    shipped = run_cli("embed", EXAMPLE_FASTA, "-r", "Chr1:1-64", "-o", tmp_path / "shipped.h5")
    assert shipped.code == 0, shipped.err
    assert f" INFO {SHIPPED_MODEL_NOTE}\n" in shipped.err
    assert "kuleshov-group/PlantCaduceus_l32" in SHIPPED_MODEL_NOTE and "not for biology" in SHIPPED_MODEL_NOTE
    chosen = run_cli("embed", EXAMPLE_FASTA, "-r", "Chr1:1-64", "-m", tiny_checkpoint(), "-o", tmp_path / "chosen.h5")
    assert chosen.code == 0 and "demonstration" not in chosen.err
