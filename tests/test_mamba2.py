"""Mamba-2 (PlantCAD2's mixer): the SSD against a per-step recurrence, the compiled kernel against the
exact reference, and the loader telling the mixer and its sizes from the weights."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from caduceus_cli import load_model
from caduceus_cli.errors import CheckpointError
from caduceus_cli.model import compiled
from caduceus_cli.model.config import Mamba2Config, parse_mixer
from caduceus_cli.model.ssd import reference_ssd, ssd


def _layout(heads=3, headdim=4, groups=1, d_state=5, per_channel_d=False, chunk_size=256) -> Mamba2Config:
    return Mamba2Config(
        d_state=d_state, d_inner=heads * headdim, headdim=headdim, ngroups=groups, chunk_size=chunk_size,
        d_has_hdim=per_channel_d,
    )  # fmt: skip


def _inputs(layout: Mamba2Config, length: int, batch=2, dt_shift=0.0, dtype=torch.float64, seed=1):
    """xbc, dt, A, D, dt_bias, z as the mixer passes them (z a view of a wider tensor, as of the in_proj
    output); dt_shift moves delta towards fast (positive) or slow (negative) decay."""
    g = torch.Generator().manual_seed(seed)
    xbc = torch.randn(batch, length, layout.conv_dim, generator=g, dtype=dtype)
    dt = torch.randn(batch, length, layout.nheads, generator=g, dtype=dtype) + dt_shift
    A = -torch.exp(torch.randn(layout.nheads, generator=g, dtype=dtype))
    D = torch.randn(layout.d_inner if layout.d_has_hdim else layout.nheads, generator=g, dtype=dtype)
    dt_bias = torch.randn(layout.nheads, generator=g, dtype=dtype)
    z = torch.randn(batch, length, layout.d_inner + 3, generator=g, dtype=dtype)[..., : layout.d_inner]
    return xbc, dt, A, D, dt_bias, z


def _recurrence(xbc, dt, A, D, dt_bias, z, layout: Mamba2Config, reverse=False) -> torch.Tensor:
    """The gated SSD one position and one head at a time, in float64: the definition."""
    xbc, dt, A, D, dt_bias, z = (t.double() for t in (xbc, dt, A, D, dt_bias, z))
    if reverse:
        xbc, dt, z = xbc.flip(1), dt.flip(1), z.flip(1)
    inner, n, p = layout.d_inner, layout.d_state, layout.headdim
    per_group = layout.nheads // layout.ngroups
    batch, length, _ = xbc.shape
    y = torch.zeros(batch, length, inner, dtype=torch.float64)
    for b in range(batch):
        state = torch.zeros(layout.nheads, p, n, dtype=torch.float64)
        for t in range(length):
            delta = torch.nn.functional.softplus(dt[b, t] + dt_bias)
            for h in range(layout.nheads):
                g = h // per_group
                x = xbc[b, t, h * p : (h + 1) * p]
                B = xbc[b, t, inner + g * n : inner + (g + 1) * n]
                C = xbc[b, t, inner + (layout.ngroups + g) * n : inner + (layout.ngroups + g + 1) * n]
                state[h] = torch.exp(delta[h] * A[h]) * state[h] + delta[h] * torch.outer(x, B)
                skip = D[h * p : (h + 1) * p] if layout.d_has_hdim else D[h]
                y[b, t, h * p : (h + 1) * p] = state[h] @ C + skip * x
    y = y * torch.nn.functional.silu(z)
    return y.flip(1) if reverse else y


LAYOUTS = {
    "one-group": _layout(),
    "two-groups-channel-D": _layout(heads=4, groups=2, per_channel_d=True),
}


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [1, 7, 255, 256, 257, 600], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_reference_ssd_equals_the_per_step_recurrence_below_at_and_across_the_chunk(layout, length, reverse):
    layout = LAYOUTS[layout]
    inputs = _inputs(layout, length, batch=1)
    want = _recurrence(*inputs, layout, reverse)
    got = ssd(*inputs, layout, reverse)  # float64: the reference
    assert got.dtype == torch.float64
    assert (got - want).abs().max().item() < 1e-12 * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("dt_shift", [0.0, 8.0, -8.0], ids=["plain", "fast-decay", "slow-decay"])
def test_reference_ssd_does_not_depend_on_the_chunk(dt_shift):
    layout = LAYOUTS["two-groups-channel-D"]
    inputs = _inputs(layout, 600, dt_shift=dt_shift)
    by_chunk = [reference_ssd(*inputs, layout, chunk=chunk) for chunk in (256, 17, 1000)]
    for other in by_chunk[1:]:
        assert (other - by_chunk[0]).abs().max().item() < 1e-12 * max(1.0, by_chunk[0].abs().max().item())


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dt_shift", [0.0, 8.0, -8.0], ids=["plain", "fast-decay", "slow-decay"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_compiled_ssd_equals_the_float64_reference_to_float32_rounding(layout, dt_shift, reverse):
    layout = LAYOUTS[layout]
    inputs = _inputs(layout, 700, dt_shift=dt_shift, dtype=torch.float32)
    per_group = layout.nheads // layout.ngroups
    got = compiled.ssd(*inputs, layout.headdim, layout.d_state, per_group, reverse)
    want = ssd(*(t.double() for t in inputs), layout, reverse)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert (got.double() - want).abs().max().item() <= 2e-6 * max(want.abs().max().item(), 1.0)


def test_ssd_runs_the_compiled_kernel_for_float32_and_bfloat16_and_the_reference_for_float64_and_training():
    layout = LAYOUTS["one-group"]
    inputs = _inputs(layout, 100, dtype=torch.float32)
    kernel = compiled.ssd(*inputs, layout.headdim, layout.d_state, layout.nheads, True)
    assert torch.equal(ssd(*inputs, layout, reverse=True), kernel)
    half = [t.bfloat16() for t in inputs]
    assert torch.equal(
        ssd(*half, layout), compiled.ssd(*half, layout.headdim, layout.d_state, layout.nheads, False)
    )
    assert ssd(*half, layout).dtype == torch.bfloat16
    inputs64 = [t.double() for t in inputs]
    assert torch.equal(ssd(*inputs64, layout), reference_ssd(*inputs64, layout))
    trained = [t.clone().requires_grad_() for t in inputs]
    y = ssd(*trained, layout)
    assert y.requires_grad and torch.equal(y.detach(), reference_ssd(*(t.detach() for t in trained), layout))


def test_threads_share_the_heads_without_changing_a_bit():
    layout = _layout(heads=6, headdim=8)
    inputs = _inputs(layout, 300, batch=3, dtype=torch.float32)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ssd(*inputs, layout)
        torch.set_num_threads(3)
        three = ssd(*inputs, layout)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(one, three)


# --- the config and the loader ----------------------------------------------------------------------


def test_each_mixer_reads_only_its_own_ssm_cfg_keys():
    assert parse_mixer({"d_state": 8, "dt_rank": 3}, 16).describe() == (
        "Mamba-1 (d_inner 32, d_state 8, d_conv 4, dt_rank 3)"
    )
    mixer = parse_mixer({"layer": "Mamba2", "d_state": 64, "headdim": 64}, 768)
    assert mixer.describe() == "Mamba-2 (d_inner 1536: 24 heads of 64, 1 group, d_state 64, d_conv 4)"
    assert (mixer.conv_dim, mixer.in_proj_dim) == (1536 + 128, 1536 + 1664 + 24)
    with pytest.raises(CheckpointError, match=r"unsupported field\(s\) \['headdim'\] for a Mamba1 mixer"):
        parse_mixer({"headdim": 64}, 768)
    with pytest.raises(CheckpointError, match=r"unsupported field\(s\) \['dt_rank'\] for a Mamba2 mixer"):
        parse_mixer({"layer": "Mamba2", "dt_rank": 4}, 768)
    with pytest.raises(CheckpointError, match=r"'ssm_cfg.norm_before_gate': only false is supported"):
        parse_mixer({"layer": "Mamba2", "norm_before_gate": True}, 768)


def test_the_mixer_and_its_sizes_are_read_from_the_weights(plantcad2_checkpoint):
    raw = json.loads((plantcad2_checkpoint / "config.json").read_text())
    assert not {"layer", "headdim", "ngroups"} & set(raw["ssm_cfg"])  # as published: nothing names them
    model = load_model(plantcad2_checkpoint)
    assert model.config.mixer == Mamba2Config(d_state=8, d_inner=16, headdim=8, ngroups=1)
    mixer = model.caduceus.backbone.layers[0].mixer.submodule
    assert not hasattr(mixer.mamba_rev, "in_proj") and not hasattr(mixer.mamba_rev, "out_proj")


def test_a_state_dict_with_both_directions_projections_loads_as_the_tied_one(tmp_path, plantcad2_checkpoint):
    """torch.save keeps the reverse direction's in_proj/out_proj (one storage with the forward's)."""
    folder = tmp_path / "bin"
    shutil.copytree(plantcad2_checkpoint, folder)
    state = load_file(folder / "model.safetensors")
    for key in [k for k in state if "mamba_fwd.in_proj" in k or "mamba_fwd.out_proj" in k]:
        state[key.replace("mamba_fwd", "mamba_rev")] = state[key]
    state["lm_head.lm_head.weight"] = state["caduceus.backbone.embeddings.word_embeddings.embedding.weight"]
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    ids = torch.randint(3, 7, (1, 50), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.equal(load_model(folder)(ids).logits, load_model(plantcad2_checkpoint)(ids).logits)
    key = "caduceus.backbone.layers.1.mixer.submodule.mamba_rev.out_proj.weight"
    state[key] = state[key] + 1
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=f"tensor '{key}' differs from .*, but the config ties them"):
        load_model(folder)


_FWD = "caduceus.backbone.layers.0.mixer.submodule.mamba_fwd."


def _edit_weights(folder, edit):
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors")


def _edit_ssm_cfg(folder, **changes):
    raw = json.loads((folder / "config.json").read_text())
    raw["ssm_cfg"].update(changes)
    (folder / "config.json").write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: _edit_weights(f, lambda s: s.update({_FWD + "A_log": s[_FWD + "A_log"][None]})),
         r"model.safetensors: cannot tell the mixer: tensor '.*mamba_fwd.A_log' has shape \(1, 2\)"),
        (lambda f: _edit_weights(f, lambda s: s.update({_FWD + "A_log": s[_FWD + "A_log"][None, None]})),
         r"model.safetensors: cannot tell the mixer: tensor '.*mamba_fwd.A_log' has shape \(1, 1, 2\)"),
        (lambda f: _edit_ssm_cfg(f, layer="Mamba1"),
         r"config.json: key 'ssm_cfg.layer' is 'Mamba1', but tensor '.*mamba_fwd.A_log' of shape \(2,\) is a "
         r"Mamba2 mixer's"),
        (lambda f: _edit_ssm_cfg(f, headdim=4),
         r"config.json: key 'ssm_cfg.headdim' is 4, but the shapes of '.*in_proj.weight' and "
         r"'.*out_proj.weight' give 8"),
        (lambda f: _edit_ssm_cfg(f, d_state=5),
         r"model.safetensors: tensor '.*mamba_fwd.in_proj.weight' has 50 rows: z and x \(32\) and dt \(2\) "
         r"leave 16 for B and C, not a multiple of 2 x d_state 5"),
        (lambda f: _edit_ssm_cfg(f, expand=3),
         r"model.safetensors: tensor '.*mamba_fwd.out_proj.weight' has d_inner 16, but config.json's expand 3 "
         r"x d_model 8 is 24"),
        (lambda f: _edit_weights(f, lambda s: s.update({_FWD + "D": torch.zeros(5)})),
         r"model.safetensors: tensor '.*mamba_fwd.D' has shape \(5,\): neither one per head \(2\) nor per "
         r"channel \(16\)"),
        (lambda f: _edit_weights(f, lambda s: s.update({_FWD + "x_proj.weight": torch.zeros(3, 16)})),
         r"model.safetensors: cannot tell the mixer: tensor '.*mamba_fwd.A_log' has shape \(2,\)"),
        (lambda f: _edit_weights(f, lambda s: s.pop("caduceus.backbone.layers.1.mixer.submodule.mamba_rev.dt_bias")),
         r"model.safetensors: missing tensor 'caduceus.backbone.layers.1.mixer.submodule.mamba_rev.dt_bias'"),
        (lambda f: _edit_weights(f, lambda s: s.update({
            "caduceus.backbone.layers.1.mixer.submodule.mamba_fwd.conv1d.weight": torch.zeros(40, 1, 4)})),
         r"model.safetensors: tensor '.*layers.1.*conv1d.weight' has shape \(40, 1, 4\), config.json implies "
         r"\(32, 1, 4\)"),
    ],
    ids=["A_log-2d", "A_log-3d", "layer-contradicts", "headdim-contradicts", "in_proj-rows", "expand",
         "D-shape", "x_proj-beside-1d-A_log", "missing", "later-layer-shape"],
)  # fmt: skip
def test_a_mixer_that_cannot_be_told_or_does_not_add_up_is_refused_in_one_line(
    tmp_path, plantcad2_checkpoint, damage, message
):
    folder = tmp_path / "model"
    shutil.copytree(plantcad2_checkpoint, folder)
    damage(folder)
    with pytest.raises(CheckpointError, match=message) as error:
        load_model(folder)
    assert "\n" not in str(error.value) and str(folder) in str(error.value)


def test_a_mamba1_checkpoint_is_not_read_as_mamba2(ps_checkpoint):
    model = load_model(ps_checkpoint)
    assert model.config.mixer.kind == "Mamba1" and "layer" not in model.config.ssm_cfg


def test_fine_tuned_task_checkpoints_are_refused_saying_what_is_supported(tmp_path, plantcad2_checkpoint):
    classifier = tmp_path / "classifier"
    shutil.copytree(plantcad2_checkpoint, classifier)
    raw = json.loads((classifier / "config.json").read_text())
    (classifier / "config.json").write_text(json.dumps(raw | {"architectures": ["CaduceusForSequenceClassification"]}))
    with pytest.raises(CheckpointError, match=(
        r"config.json: key 'architectures': 'CaduceusForSequenceClassification' \(a fine-tuned task model\) is not "
        r"supported: caduceus runs masked-language-model checkpoints \(CaduceusForMaskedLM: Caduceus, "
        r"PlantCaduceus, PlantCAD2\); use the base model it was fine-tuned from$")):  # fmt: skip
        load_model(classifier)
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "kuleshov-group/PlantCAD2-Small-l24-d0768", "peft_type": "LORA"})
    )
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=(
        r"lora: a PEFT adapter \(adapter_config.json; base model kuleshov-group/PlantCAD2-Small-l24-d0768\), "
        r"not a model: caduceus runs masked-language-model checkpoints")):  # fmt: skip
        load_model(adapter)

