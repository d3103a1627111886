"""Shared fixtures: tiny random Caduceus checkpoints in the published format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
