"""Forward hooks on the model's modules see the intermediate layers `output_hidden_states` reports:
users read layers this way, so every module runs through its own `forward`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_config, random_model

from caduceus_cli import load_model


def _hooked_run(model, ids: torch.Tensor):
    """Run `model` with hooks on the embeddings, every block, the final norm and the LM head; return the
    model output and what each hook saw."""
    backbone = model.caduceus.backbone
    seen: dict[str, list] = {"embeddings": [], "blocks": [], "norm_f": [], "lm_head": []}

    def keep(key: str, with_input: bool = False):
        def hook(module, args, output):
            seen[key].append((args[0], output) if with_input else output)

        return hook

    handles = [
        backbone.embeddings.register_forward_hook(keep("embeddings")),
        backbone.norm_f.register_forward_hook(keep("norm_f", with_input=True)),
        model.lm_head.register_forward_hook(keep("lm_head")),
        *(layer.register_forward_hook(keep("blocks")) for layer in backbone.layers),
    ]
    try:
        with torch.no_grad():
            out = model(ids, output_hidden_states=True)
    finally:
        for handle in handles:
            handle.remove()
    return out, seen


def _assert_hooks_see_the_hidden_states(model) -> None:
    n_layer = model.config.n_layer
    ids = torch.from_numpy(np.random.default_rng(13).integers(7, 12, size=(2, 57)))
    out, seen = _hooked_run(model, ids)
    states = out.hidden_states
    assert len(states) == n_layer + 1

    (embedding,) = seen["embeddings"]
    assert torch.equal(embedding, states[0])

    blocks = seen["blocks"]
    assert len(blocks) == n_layer  # each block runs once, through its own forward
    for i, (hidden, residual) in enumerate(blocks[:-1]):
        assert torch.equal(hidden, states[i + 1]), f"block {i}"  # the raw mixer output of block i
        assert hidden.shape == residual.shape == out.hidden.shape

    # the last block's output feeds the final norm (both halves of it for PS), whose output is `hidden`
    last_hidden, last_residual = blocks[-1]
    fed = torch.cat([given for given, _ in seen["norm_f"]], dim=-1)
    assert len(seen["norm_f"]) == (2 if model.config.rcps else 1)
    assert torch.equal(fed, last_hidden + last_residual)
    assert torch.equal(torch.cat([normed for _, normed in seen["norm_f"]], dim=-1), out.hidden)
    assert torch.equal(states[-1], out.hidden)

    (logits,) = seen["lm_head"]
    assert torch.equal(logits, out.logits)


def test_hooks_on_blocks_see_what_output_hidden_states_reports(checkpoint):
    _assert_hooks_see_the_hidden_states(load_model(checkpoint))


@pytest.mark.parametrize(
    "overrides",
    [
        {"variant": "ps", "fused_add_norm": False},
        {"variant": "ps", "rms_norm": False, "residual_in_fp32": True},
        {"bidirectional_weight_tie": False, "bidirectional_strategy": "ew_multiply"},
    ],
    ids=["ps_unfused", "ps_layernorm_residual_fp32", "ph_untied_ew_multiply"],
)
def test_hooks_see_every_layer_of_deeper_and_other_variants(overrides):
    model = random_model(random_config(n_layer=4, **overrides), seed=14)
    _assert_hooks_see_the_hidden_states(model.double())


def test_blocks_called_by_hand_reproduce_the_forward(checkpoint):
    """block(hidden, residual) -> (hidden, residual): the layers chain like the model's own loop."""
    model = load_model(checkpoint, dtype="float64")
    backbone = model.caduceus.backbone
    ids = torch.from_numpy(np.random.default_rng(15).integers(7, 12, size=(1, 40)))
    with torch.no_grad():
        states = model(ids, output_hidden_states=True).hidden_states
        hidden, residual = backbone.embeddings(ids), None
        for i, layer in enumerate(backbone.layers[:-1]):
            hidden, residual = layer(hidden, residual)
            assert torch.equal(hidden, states[i + 1])
