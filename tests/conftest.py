"""Shared fixtures: tiny random Caduceus checkpoints in the published format, and `run_cli`."""

from __future__ import annotations

import json
import os
import sys
import threading
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


MAMBA1_SSM_CFG = {"d_state": 8, "d_conv": 4, "expand": 2, "dt_rank": "auto", "bias": False, "conv_bias": True}
# two heads of 16 channels at d_model 16, one group
MAMBA2_SSM_CFG = {"layer": "Mamba2", "d_state": 8, "d_conv": 4, "expand": 2, "headdim": 16, "ngroups": 1,
                  "bias": False, "conv_bias": True}  # fmt: skip


def random_config(
    variant: str = "ph", d_model: int = 16, n_layer: int = 2, mixer: str = "Mamba1", **overrides
) -> CaduceusConfig:
    ssm_cfg = dict(MAMBA2_SSM_CFG if mixer == "Mamba2" else MAMBA1_SSM_CFG)
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
                0.3
                if name.endswith(("A_log", "D", "norm.weight", "norm_f.weight", "dt_proj.bias", "dt_bias"))
                else 0.1
            )
            param.add_(scale * torch.randn_like(param))
    return model.eval()


def make_checkpoint(
    folder: Path, variant: str = "ph", seed: int = 0, max_length: int | None = None, **sizes
) -> Path:
    save_checkpoint(random_model(random_config(variant, **sizes), seed), folder, max_length=max_length)
    return folder


# GPN's DNA tokenizer as PlantCaduceus publishes it (tokenizer.json, tokenizer_config.json,
# special_tokens_map.json): a BPE vocabulary of single characters with no merges, lowercasing.
_GPN_SPECIALS = ("[PAD]", "[MASK]", "[UNK]")
GPN_TOKENIZER_JSON = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": True}
        for i, t in enumerate(_GPN_SPECIALS)
    ],
    "normalizer": {"type": "Lowercase"},
    "pre_tokenizer": {"type": "Whitespace"},
    "post_processor": None,
    "decoder": None,
    "model": {
        "type": "BPE", "dropout": None, "unk_token": "[UNK]", "continuing_subword_prefix": None,
        "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
        "vocab": {"[PAD]": 0, "[MASK]": 1, "[UNK]": 2, "a": 3, "c": 4, "g": 5, "t": 6}, "merges": [],
    },
}  # fmt: skip
GPN_TOKENIZER_CONFIG = {
    "clean_up_tokenization_spaces": True,
    "mask_token": "[MASK]",
    "model_max_length": 1000000000000000019884624838656,  # a placeholder, not the training length
    "pad_token": "[PAD]",
    "tokenizer_class": "PreTrainedTokenizerFast",
    "unk_token": "[UNK]",
}
GPN_SPECIAL_TOKENS_MAP = {
    name: {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    for name, t in (("mask_token", "[MASK]"), ("pad_token", "[PAD]"), ("unk_token", "[UNK]"))
}


def _gpn_model(seed: int, mixer: str, **sizes) -> CaduceusForMaskedLM:
    """A random PS model with the 8-id vocabulary of GPN's tokenizer and its complement map."""
    config = random_config("ps", mixer=mixer, **sizes)
    config.vocab_size = 8
    config.complement_map = {3: 6, 4: 5, 5: 4, 6: 3}
    config.residual_in_fp32 = mixer == "Mamba1"  # PlantCaduceus true, PlantCAD2 false
    return random_model(config, seed)


def make_plantcad_checkpoint(folder: Path, seed: int = 0, **sizes) -> Path:
    """A tiny random PS checkpoint in PlantCaduceus' published layout: 8-id vocabulary with its complement
    map, GPN's tokenizer files, and the weights as pytorch_model.bin (a plain state dict)."""
    model = _gpn_model(seed, "Mamba1", **sizes)
    folder.mkdir(parents=True, exist_ok=True)
    raw = model.config.to_dict() | {"architectures": ["Caduceus"], "pad_token_id": -100}
    (folder / "config.json").write_text(json.dumps(raw, indent=2))
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")
    return write_gpn_tokenizer(folder)


def make_plantcad2_checkpoint(folder: Path, seed: int = 0, **sizes) -> Path:
    """A tiny random PS checkpoint in PlantCAD2's published layout: Mamba-2 mixers, a config.json that
    names neither the mixer nor its head size or groups, model.safetensors without the tied tensors,
    GPN's tokenizer files."""
    model = _gpn_model(seed, "Mamba2", **sizes)
    save_checkpoint(model, folder)
    raw = model.config.to_dict() | {"pad_token_id": -100}
    raw["ssm_cfg"] = {k: v for k, v in raw["ssm_cfg"].items() if k not in ("layer", "headdim", "ngroups")}
    (folder / "config.json").write_text(json.dumps(raw, indent=2))
    return write_gpn_tokenizer(folder)


def write_gpn_tokenizer(folder: Path) -> Path:
    """GPN's tokenizer files, as PlantCaduceus and PlantCAD2 publish them."""
    for name, content in (
        ("tokenizer.json", GPN_TOKENIZER_JSON),
        ("tokenizer_config.json", GPN_TOKENIZER_CONFIG),
        ("special_tokens_map.json", GPN_SPECIAL_TOKENS_MAP),
    ):
        (folder / name).write_text(json.dumps(content, indent=2))
    return folder


@pytest.fixture(scope="session")
def plantcad_checkpoint(tmp_path_factory) -> Path:
    return make_plantcad_checkpoint(tmp_path_factory.mktemp("plantcad_tiny"), seed=5, d_model=8, n_layer=2)


@pytest.fixture(scope="session")
def plantcad2_checkpoint(tmp_path_factory) -> Path:
    """Two heads of 8 channels at d_model 8."""
    return make_plantcad2_checkpoint(
        tmp_path_factory.mktemp("plantcad2_tiny"), seed=6, d_model=8, n_layer=2, ssm_cfg={"headdim": 8}
    )


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
def named_pipe() -> Callable[[Path, bytes], Path]:
    """`named_pipe(path, content)`: a FIFO at `path` that gives `content` once to its first reader, as
    `<(zcat calls.vcf.gz)` gives a command's output (a daemon thread writes it, so a reader that never
    comes leaves nothing waiting)."""

    def make(path: Path, content: bytes) -> Path:
        os.mkfifo(path)
        threading.Thread(target=path.write_bytes, args=(content,), daemon=True).start()
        return path

    return make


@pytest.fixture
def run_cli(capfd) -> Callable[..., CliResult]:
    """`run_cli(*args)`: `caduceus` run as a shell would, (exit code, stdout, stderr) as file
    descriptors 1 and 2 saw them."""

    def run(*args: object) -> CliResult:
        code = caduceus(*args)
        out, err = capfd.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture(scope="session")
def slurm():
    """A single-node SLURM cluster without accounting (tests/slurm.py), up once per session; the tests
    that use it skip, with the reason, where this machine cannot run one."""
    from slurm import Unavailable, start_cluster

    try:
        cluster = start_cluster()
    except Unavailable as why:
        pytest.skip(f"no SLURM test cluster: {why}")
    yield cluster
    cluster.stop()
