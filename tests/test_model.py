"""The model reproduces the original Caduceus: conformance fixtures, an independent reference, RC symmetry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import CONFORMANCE, random_config, random_model
from reference import reference_forward
from safetensors.numpy import load_file

from caduceus_cli import load_model
from caduceus_cli.model.load import save_checkpoint
from caduceus_cli.model.scan import chunked_scan

CONFORMANCE_CONFIGS = ["ph_d32_l2", "ph_d40_l2", "ph_d64_l3", "ps_d32_l2", "ps_d64_l4"]
# tolerances stated in the fixtures' README: float64 1e-9; float32 1e-4 on logits, 1e-5 on the rest
FLOAT32_TOLERANCE = {"logits": 1e-4, "logits_conj": 1e-4, "logits_rc": 1e-4}


def _model_outputs(model, ids: torch.Tensor, name: str) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        rc_out = model(model.reverse_complement(ids))
        emb_conj = model.embed(ids)
        return {
            "logits": out.logits,
            "hidden": out.hidden,
            "logits_rc": rc_out.logits,
            "hidden_rc": rc_out.hidden,
            "logits_conj": model.logits_conjoined(ids),
            "emb": model.embed(ids, rc="none"),
            "emb_conj": emb_conj,
            "pooled_conj": emb_conj.mean(1),
            "hidden_states_all": torch.stack(out.hidden_states),
        }


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="../shared/conformance not present")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("config_name", CONFORMANCE_CONFIGS)
def test_every_conformance_array_is_reproduced(config_name, dtype):
    inputs = np.load(CONFORMANCE / "inputs.npz")
    expected = np.load(CONFORMANCE / config_name / "expected.npz")
    model = load_model(CONFORMANCE / config_name, dtype=dtype)
    checked = 0
    for name in inputs.files:
        got = _model_outputs(model, torch.from_numpy(inputs[name]), name)
        for array, value in got.items():
            key = f"{name}__{array}"
            if key not in expected:
                continue
            tolerance = 1e-9 if dtype == "float64" else FLOAT32_TOLERANCE.get(array, 1e-5)
            error = np.abs(value.double().numpy() - expected[key]).max()
            assert error <= tolerance, f"{key}: max abs error {error:.2e} > {tolerance:.0e}"
            checked += 1
    assert checked == len(expected.files)


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="../shared/conformance not present")
def test_tokenizer_matches_the_original_on_its_cases():
    from caduceus_cli.tokens import CADUCEUS

    cases = json.loads((CONFORMANCE / "tokenizer_cases.json").read_text())["cases"]
    for case in cases:
        text = case.get("text")
        if text is None or "[" in text or "-" in text:
            continue  # special-token strings and punctuation are not DNA input for us
        expected = [6 if i == 6 else i for i in case["ids_add_special_tokens_false"]]
        # the original maps IUPAC letters to [UNK]=6; we map them to N=11 (documented)
        assert CADUCEUS.encode(text).tolist() == [11 if i == 6 else i for i in expected]


VARIANTS = {
    "ph": {},
    "ps": {"variant": "ps"},
    "ps_unfused_add_norm": {"variant": "ps", "fused_add_norm": False},
    "ph_layernorm": {"rms_norm": False},
    "ps_layernorm": {"variant": "ps", "rms_norm": False},
    "ph_ew_multiply": {"bidirectional_strategy": "ew_multiply"},
    "ph_untied_reverse": {"bidirectional_weight_tie": False},
    "ph_unidirectional": {"bidirectional": False},
    "ph_integer_dt_rank_and_sizes": {"ssm_cfg": {"dt_rank": 3, "d_state": 4, "d_conv": 3, "expand": 3}},
    "ps_projection_bias": {"variant": "ps", "ssm_cfg": {"bias": True}},
    "ph_residual_in_fp32": {"residual_in_fp32": True},
    "ps_d24_three_layers": {"variant": "ps", "d_model": 24, "n_layer": 3},
    # Mamba-2 mixers (PlantCAD2); chunks of 64 so the 150 positions cross the SSD's chunk boundary twice
    "ph_mamba2": {"mixer": "Mamba2", "ssm_cfg": {"chunk_size": 64}},
    "ps_mamba2": {"variant": "ps", "mixer": "Mamba2"},
    "ps_mamba2_groups_and_channel_D": {
        "variant": "ps", "mixer": "Mamba2", "ssm_cfg": {"headdim": 8, "ngroups": 2, "D_has_hdim": True, "chunk_size": 64}
    },
    "ph_mamba2_bias_untied": {"mixer": "Mamba2", "ssm_cfg": {"bias": True}, "bidirectional_weight_tie": False},
    "ps_mamba2_unfused_add_norm": {"variant": "ps", "mixer": "Mamba2", "fused_add_norm": False},
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_model_matches_independent_float64_reference(variant, tmp_path):
    config = random_config(**VARIANTS[variant])
    save_checkpoint(random_model(config, seed=3), tmp_path)
    model = load_model(tmp_path, dtype="float64")
    state = {
        k: v.astype(np.float64) if v.dtype.kind == "f" else v
        for k, v in load_file(tmp_path / "model.safetensors").items()
    }
    raw_config = json.loads((tmp_path / "config.json").read_text())
    ids = np.random.default_rng(4).integers(7, 12, size=150)  # crosses the scan's chunk boundary
    want_logits, want_hidden = reference_forward(state, raw_config, ids)
    with torch.no_grad():
        out = model(torch.from_numpy(ids)[None])
    assert np.abs(out.hidden[0].numpy() - want_hidden).max() < 1e-10
    assert np.abs(out.logits[0].numpy() - want_logits).max() < 1e-9


def _scan_inputs(decay_scale: float, length: int = 300, dtype=torch.float64):
    g = torch.Generator().manual_seed(5)
    u = torch.randn(2, length, 6, generator=g, dtype=dtype)
    delta = torch.rand(2, length, 6, generator=g, dtype=dtype) * decay_scale
    A = -torch.rand(6, 4, generator=g, dtype=dtype) * 4 - 0.1
    B, C = (
        torch.randn(2, length, 4, generator=g, dtype=dtype),
        torch.randn(2, length, 4, generator=g, dtype=dtype),
    )
    return u, delta, A, B, C, torch.randn(6, generator=g, dtype=dtype)


def _loop_scan(u, delta, A, B, C, D):
    state = torch.zeros(u.shape[0], u.shape[2], A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(u.shape[1]):
        state = (
            torch.exp(delta[:, t, :, None] * A) * state
            + (delta[:, t] * u[:, t])[..., None] * B[:, t, None, :]
        )
        ys.append((state * C[:, t, None, :]).sum(-1) + D * u[:, t])
    return torch.stack(ys, 1)


@pytest.mark.parametrize("decay_scale", [0.01, 1.0, 50.0])
def test_chunked_scan_equals_position_by_position_scan_even_with_fast_decay(decay_scale):
    inputs = _scan_inputs(decay_scale)
    assert torch.allclose(chunked_scan(*inputs), _loop_scan(*inputs), rtol=0, atol=1e-12)


def test_chunked_scan_gradients_equal_the_position_by_position_scan_for_training():
    inputs = [t.requires_grad_() for t in _scan_inputs(1.0, length=100)]
    weights = torch.randn(2, 100, 6, dtype=torch.float64)
    grads = torch.autograd.grad((chunked_scan(*inputs) * weights).sum(), inputs)
    want = torch.autograd.grad((_loop_scan(*inputs) * weights).sum(), inputs)
    for got, expected in zip(grads, want, strict=True):
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_chunked_scan_float32_stays_within_float32_rounding():
    inputs64 = _scan_inputs(1.0)
    got = chunked_scan(*(t.float() for t in inputs64)).double()
    assert (got - _loop_scan(*inputs64)).abs().max() < 2e-5


def test_ps_logits_are_exactly_rc_equivariant_and_embeddings_rc_invariant(ps_checkpoint):
    model = load_model(ps_checkpoint, dtype="float64")
    ids = torch.from_numpy(np.random.default_rng(6).integers(7, 12, size=(3, 91)))
    rc = model.reverse_complement(ids)
    with torch.no_grad():
        logits, logits_rc = model(ids).logits, model(rc).logits
        emb, emb_rc = model.embed(ids, rc="none"), model.embed(rc, rc="none")
    assert (logits_rc.flip(1)[..., model.complement] - logits).abs().max() < 1e-12
    assert (emb_rc.flip(1) - emb).abs().max() < 1e-12


@pytest.mark.parametrize("rc", ["auto", "average"])
def test_conjoined_ph_outputs_are_rc_invariant(ph_checkpoint, rc):
    model = load_model(ph_checkpoint, dtype="float64")
    ids = torch.from_numpy(np.random.default_rng(7).integers(7, 12, size=(2, 77)))
    rc_ids = model.reverse_complement(ids)
    with torch.no_grad():
        assert (model.embed(rc_ids, rc=rc).flip(1) - model.embed(ids, rc=rc)).abs().max() < 1e-12
        conj, conj_rc = model.logits_conjoined(ids, rc=rc), model.logits_conjoined(rc_ids, rc=rc)
    assert (conj_rc.flip(1)[..., model.complement] - conj).abs().max() < 1e-12


def test_ph_forward_only_embedding_is_not_rc_invariant(ph_checkpoint):
    model = load_model(ph_checkpoint, dtype="float64")
    ids = torch.from_numpy(np.random.default_rng(8).integers(7, 11, size=(1, 40)))
    with torch.no_grad():
        diff = (
            (model.embed(model.reverse_complement(ids), rc="none").flip(1) - model.embed(ids, rc="none"))
            .abs()
            .max()
        )
    assert diff > 1e-3


def test_batching_never_changes_a_sequence_result(checkpoint):
    model = load_model(checkpoint, dtype="float64")
    ids = torch.from_numpy(np.random.default_rng(9).integers(7, 12, size=(4, 33)))
    with torch.no_grad():
        batched = model.embed(ids)
        for row in range(4):
            assert (model.embed(ids[row : row + 1])[0] - batched[row]).abs().max() < 1e-12


def test_rc_mode_is_validated(ph_checkpoint):
    model = load_model(ph_checkpoint)
    with pytest.raises(ValueError, match="rc must be"):
        model.embed(torch.full((1, 4), 7), rc="both")


@pytest.mark.parametrize(
    ("variant", "rc", "passes"),
    [("ph", "auto", 2), ("ph", "none", 1), ("ph", "average", 2), ("ps", "auto", 2), ("ps", "none", 2), ("ps", "average", 4)],
)
def test_strand_passes_count_the_strands_the_network_runs(variant, rc, passes):
    model = random_model(random_config(variant, d_model=8, n_layer=1))
    calls = []
    model.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    model.embed(torch.randint(7, 11, (3, 16)), rc=rc)
    assert model.strand_passes(rc) == passes
    assert sum(calls) * (2 if variant == "ps" else 1) == 3 * passes  # sequences through the network


def test_bfloat16_model_runs_on_the_cpu_close_to_float32(checkpoint):
    ids = torch.from_numpy(np.random.default_rng(12).integers(7, 12, size=(1, 70)))
    with torch.no_grad():
        full = load_model(checkpoint).embed(ids)
        half = load_model(checkpoint, dtype="bfloat16").embed(ids)
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max() < 0.05 * full.abs().max()
