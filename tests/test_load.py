"""Loading checkpoints: published format, hub cache, provenance, and one clear error per problem."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import CONFORMANCE, make_checkpoint
from safetensors.torch import load_file, save_file

from caduceus_cli import load_model
from caduceus_cli.errors import CheckpointError
from caduceus_cli.model.load import default_model_path


@pytest.fixture
def ph_copy(tmp_path, ph_checkpoint) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(ph_checkpoint, folder)
    return folder


def _edit_weights(folder: Path, edit) -> None:
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors")


def _edit_config(folder: Path, **changes) -> None:
    raw = json.loads((folder / "config.json").read_text())
    raw.update(changes)
    (folder / "config.json").write_text(json.dumps(raw))


def test_saved_checkpoint_has_published_keys_without_tied_tensors(ph_checkpoint, ps_checkpoint):
    ph_keys = set(load_file(ph_checkpoint / "model.safetensors"))
    ps_keys = set(load_file(ps_checkpoint / "model.safetensors"))
    assert len(ph_keys) == 17 * 2 + 2 and len(ps_keys) == 17 * 2 + 4
    assert "caduceus.backbone.layers.1.mixer.mamba_rev.A_log" in ph_keys
    assert "caduceus.backbone.layers.1.mixer.submodule.mamba_rev.dt_proj.bias" in ps_keys
    assert {
        "caduceus.backbone.embeddings.word_embeddings.complement_map",
        "lm_head.complement_map",
    } <= ps_keys
    assert not any(
        "mamba_rev.in_proj" in k or "mamba_rev.out_proj" in k or k.endswith("lm_head.weight")
        for k in ph_keys | ps_keys
    )


def test_reverse_projections_are_tied_to_the_forward_ones_after_loading(ps_checkpoint):
    model = load_model(ps_checkpoint)
    mixer = model.caduceus.backbone.layers[0].mixer.submodule
    assert not hasattr(mixer.mamba_rev, "in_proj")  # the reverse direction uses mamba_fwd's projections
    assert (
        model.embedding_weight.data_ptr()
        == model.caduceus.backbone.embeddings.word_embeddings.embedding.weight.data_ptr()
    )


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="../shared/conformance not present")
def test_published_config_keys_are_written_back_identically(tmp_path):
    from caduceus_cli.model.load import save_checkpoint

    model = load_model(CONFORMANCE / "ps_d64_l4")
    save_checkpoint(model, tmp_path)
    assert (tmp_path / "config.json").read_text().strip() == (
        CONFORMANCE / "ps_d64_l4" / "config.json"
    ).read_text().strip()
    for key, tensor in load_file(CONFORMANCE / "ps_d64_l4" / "model.safetensors").items():
        assert torch.equal(load_file(tmp_path / "model.safetensors")[key], tensor)


def test_provenance_records_source_and_weights_hash(ph_checkpoint):
    import hashlib

    model = load_model(ph_checkpoint)
    digest = hashlib.sha256((ph_checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert model.provenance == {"source": str(ph_checkpoint), "revision": "none", "sha256": digest}


def test_default_window_comes_from_tokenizer_config_or_hub_name(tmp_path):
    from caduceus_cli.model.load import training_length

    folder = make_checkpoint(tmp_path / "m", max_length=2048)
    model = load_model(folder)
    assert (model.default_window, model.window_source) == (2048, "tokenizer_config.json model_max_length")
    assert training_length(tmp_path, "kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16") == (
        131072,
        "published checkpoint kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16",
    )
    assert training_length(tmp_path, "someone/caduceus-ph_seqlen-1k_finetuned") == (1024, "the name's seqlen-1k")
    assert training_length(tmp_path, "some/model") == (None, None)


@pytest.mark.parametrize(
    "source",
    [
        "kuleshov-group/PlantCaduceus_l32",
        "/data/models/PlantCaduceus_l32/",
        "/home/me/.cache/huggingface/hub/models--kuleshov-group--PlantCaduceus_l32/snapshots/0123abcd",
    ],
)
def test_plantcaduceus_length_is_known_by_hub_id_cache_folder_or_folder_name(tmp_path, source):
    from caduceus_cli.model.load import training_length

    # PlantCaduceus' tokenizer_config.json holds a 1e30 placeholder, not its 512-bp training length
    (tmp_path / "tokenizer_config.json").write_text('{"model_max_length": 1000000000000000019884624838656}')
    assert training_length(tmp_path, source) == (512, "published checkpoint kuleshov-group/PlantCaduceus_l32")


def test_complement_map_is_read_by_key_not_by_order(ps_copy_with_shuffled_map):
    model = load_model(ps_copy_with_shuffled_map)
    assert model.complement.tolist()[7:11] == [10, 9, 8, 7]


@pytest.fixture
def ps_copy_with_shuffled_map(tmp_path, ps_checkpoint) -> Path:
    folder = tmp_path / "ps"
    shutil.copytree(ps_checkpoint, folder)
    raw = json.loads((folder / "config.json").read_text())
    # what a re-saved config looks like: string keys in lexicographic order
    raw["complement_map"] = {k: raw["complement_map"][k] for k in sorted(raw["complement_map"])}
    (folder / "config.json").write_text(json.dumps(raw))
    return folder


def test_pickled_weights_load_only_as_plain_tensors(ph_copy):
    state = load_file(ph_copy / "model.safetensors")
    (ph_copy / "model.safetensors").unlink()
    torch.save(state, ph_copy / "pytorch_model.bin")
    assert load_model(ph_copy).provenance["sha256"]

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"x": Payload()}, ph_copy / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model.bin: cannot read weights"):
        load_model(ph_copy)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "config.json").unlink(), r"not a Caduceus checkpoint \(no config.json\)"),
        (
            lambda f: (f / "model.safetensors").unlink(),
            r"no weights file \(model.safetensors or pytorch_model.bin\)",
        ),
        (lambda f: (f / "config.json").write_text("{not json"), r"config.json: not valid JSON"),
        (
            lambda f: _edit_config(f, model_type="bert"),
            r"config.json: key 'model_type': 'bert' is not a Caduceus model",
        ),
        (lambda f: _edit_config(f, d_model=-3), r"config.json: key 'd_model': must be a positive integer"),
        (
            lambda f: _edit_config(f, bidirectional_strategy="concat"),
            r"key 'bidirectional_strategy': 'concat' is not one of",
        ),
        (
            lambda f: _edit_config(f, ssm_cfg={"d_state": 8, "ngroups": 2}),
            r"key 'ssm_cfg': unsupported field\(s\) \['ngroups'\]",
        ),
        (
            lambda f: _edit_config(f, ssm_cfg={"d_state": 8, "dt_rank": "big"}),
            r"key 'ssm_cfg.dt_rank': must be 'auto'",
        ),
        (
            lambda f: _edit_config(f, rcps=True, complement_map=None),
            r"key 'complement_map': is required when rcps is true",
        ),
        (lambda f: _edit_config(f, complement_map={"7": 10}), r"key 'complement_map': must be an involution"),
        (
            lambda f: _edit_weights(f, lambda s: s.pop("caduceus.backbone.layers.1.mixer.mamba_rev.A_log")),
            r"model.safetensors: missing tensor 'caduceus.backbone.layers.1.mixer.mamba_rev.A_log'",
        ),
        (
            lambda f: _edit_weights(
                f, lambda s: s.update({"caduceus.backbone.extra.weight": torch.zeros(2)})
            ),
            r"model.safetensors: unexpected tensor 'caduceus.backbone.extra.weight'",
        ),
        (
            lambda f: _edit_weights(
                f, lambda s: s.update({"caduceus.backbone.norm_f.weight": torch.zeros(3)})
            ),
            r"tensor 'caduceus.backbone.norm_f.weight' has shape \(3,\), config.json implies \(16,\)",
        ),
        (
            lambda f: _edit_weights(f, lambda s: s.update({"lm_head.weight": torch.zeros(16, 16)})),
            r"tensor 'lm_head.weight' differs from 'caduceus.backbone.embeddings.word_embeddings.weight'",
        ),
        (
            lambda f: (f / "model.safetensors").write_bytes(b"garbage"),
            r"model.safetensors: cannot read weights",
        ),
    ],
)
def test_each_broken_checkpoint_gets_one_error_naming_file_and_key(ph_copy, damage, message):
    damage(ph_copy)
    with pytest.raises(CheckpointError, match=message):
        load_model(ph_copy)


def test_a_file_is_not_a_checkpoint(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(CheckpointError, match=r"x.txt: a model is a folder"):
        load_model(tmp_path / "x.txt")


def test_unknown_name_is_neither_folder_nor_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"^missing/deeper/still: no such folder, and not a hub id"):
        load_model("missing/deeper/still")


@pytest.mark.parametrize("source", ["./weights", "../weights", "~/no-such-model-here", "/no/such/model", "mydir/model"])
def test_a_missing_path_says_no_such_folder_without_asking_the_hub(source, tmp_path, monkeypatch):
    (tmp_path / "work" / "mydir").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(CheckpointError, match=rf"^{re.escape(source)}: no such folder$"):
        load_model(source)


def test_hub_id_offline_and_not_cached_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(CheckpointError, match=r"not in the Hugging Face cache and HF_HUB_OFFLINE is set; download it once"):
        load_model("kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16")


def test_hub_id_loads_from_the_offline_cache_with_its_revision(tmp_path, monkeypatch, ph_checkpoint):
    """A repository already in the Hugging Face cache loads with no network, and records its commit."""
    import huggingface_hub.constants as constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-caduceus"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(ph_checkpoint, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model = load_model("someone/tiny-caduceus")
    assert model.provenance["revision"] == commit


def test_default_model_path_is_the_checkouts_weights_folder():
    assert default_model_path() == Path(__file__).resolve().parents[1] / "weights" / "caduceus-ph-tair10"


def test_default_model_path_of_a_wheel_install_is_under_the_prefix(tmp_path, monkeypatch):
    from caduceus_cli.model import load

    installed = tmp_path / "share" / "caduceus-cli" / "weights" / "caduceus-ph-tair10"
    installed.mkdir(parents=True)
    monkeypatch.setattr(load, "CHECKOUT_WEIGHTS", tmp_path / "site-packages" / "weights")  # not there
    monkeypatch.setattr(load.sys, "prefix", str(tmp_path))
    assert default_model_path() == installed
