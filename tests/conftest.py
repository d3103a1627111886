"""Shared fixtures: tiny random Caduceus checkpoints in the published format, and `run_cli`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from caduceus_cli.cli import main
from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.model.config import CaduceusConfig
from caduceus_cli.model.load import save_checkpoint
from caduceus_cli.tokens import COMPLEMENT

CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance"

# Test models are tiny: one thread is as fast, and concurrent test runs do not oversubscribe the cores.
torch.set_num_threads(1)


def random_config(variant: str = "ph", d_model: int = 16, n_layer: int = 2, **overrides) -> CaduceusConfig:
    ssm_cfg = {"d_state": 8, "d_conv": 4, "expand": 2, "dt_rank": "auto", "bias": False, "conv_bias": True}
    ssm_cfg.update(overrides.pop("ssm_cfg", {}))
    return CaduceusConfig(
        d_model=d_model,
        n_layer=n_layer,
        ssm_cfg=ssm_cfg,
        rcps=variant == "ps",
        complement_map=dict(enumerate(COMPLEMENT.tolist())),
        **overrides,
    )


def random_model(config: CaduceusConfig, seed: int = 0) -> CaduceusForMaskedLM:
    """A model whose every parameter is moved off its initial value, so no weight is trivially 1 or 0."""
    torch.manual_seed(seed)
    model = CaduceusForMaskedLM(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = (
                0.3 if name.endswith(("A_log", "D", "norm.weight", "norm_f.weight", "dt_proj.bias")) else 0.1
            )
            param.add_(scale * torch.randn_like(param))
    return model.eval()


def make_checkpoint(
    folder: Path, variant: str = "ph", seed: int = 0, max_length: int | None = None, **sizes
) -> Path:
    save_checkpoint(random_model(random_config(variant, **sizes), seed), folder, max_length=max_length)
    return folder


@pytest.fixture(scope="session")
def ph_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ph_checkpoint"), "ph", seed=1)


@pytest.fixture(scope="session")
def ps_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ps_checkpoint"), "ps", seed=2)


@pytest.fixture(scope="session", params=["ph", "ps"])
def checkpoint(request, ph_checkpoint, ps_checkpoint) -> Path:
    """Each test using this runs once for a PH and once for a PS checkpoint."""
    return ph_checkpoint if request.param == "ph" else ps_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Callable[..., Path]:
    """`tiny_checkpoint(variant="ph", max_length=None)`: a one-layer model (d_model 8), made once per
    session. Pipeline tests use it; model exactness is checked on `checkpoint`."""
    made: dict[tuple[str, int | None], Path] = {}

    def get(variant: str = "ph", max_length: int | None = None) -> Path:
        if (variant, max_length) not in made:
            folder = tmp_path_factory.mktemp(f"tiny_{variant}_{max_length}")
            seed = {"ph": 3, "ps": 4}[variant]
            made[variant, max_length] = make_checkpoint(
                folder, variant, seed=seed, max_length=max_length, d_model=8, n_layer=1
            )
        return made[variant, max_length]

    return get


def caduceus(*args: object) -> int:
    """Run the `caduceus` entry point in this process with these arguments; return its exit code.

    A fresh interpreter would cost seconds of imports: tests start one only where a separate
    process is the point (signals, pipes, a fresh environment)."""
    argv = sys.argv
    sys.argv = ["caduceus", *map(str, args)]
    try:
        main()
        return 0
    except SystemExit as done:
        return 0 if done.code is None else done.code
    finally:
        sys.argv = argv


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capfd) -> Callable[..., CliResult]:
    """`run_cli(*args)`: `caduceus` run as a shell would, (exit code, stdout, stderr) as file
    descriptors 1 and 2 saw them."""

    def run(*args: object) -> CliResult:
        code = caduceus(*args)
        out, err = capfd.readouterr()
        return CliResult(code, out, err)

    return run
