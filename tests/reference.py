"""An independent float64 NumPy Caduceus, written from the spec with explicit loops.

Slow and plain on purpose: it shares no code with caduceus_cli.model and runs the scan one
position at a time, so the fast paths can be checked against it on a fresh clone without the
conformance fixtures. Mixers are Mamba-1 or Mamba-2 (PlantCAD2), told apart by A_log's shape, the
Mamba-2 sizes read off the weights.
"""

from __future__ import annotations

import numpy as np


def _softplus(x):
    return np.logaddexp(0.0, x)


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _norm(x, w, b, eps, rms):
    if rms:
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _mamba(h, p, cfg):
    """One direction on one sequence h: (L, d) -> (L, d)."""
    L = h.shape[0]
    E, N, K, R = cfg["E"], cfg["N"], cfg["K"], cfg["R"]
    xz = h @ p["in_proj.weight"].T + p.get("in_proj.bias", 0.0)
    x, z = xz[:, :E], xz[:, E:]
    x = _conv_silu(x, p, K)
    dbl = x @ p["x_proj.weight"].T
    dt, B, C = dbl[:, :R], dbl[:, R : R + N], dbl[:, R + N :]
    delta = _softplus(dt @ p["dt_proj.weight"].T + p["dt_proj.bias"])
    A = -np.exp(p["A_log"])
    s = np.zeros((E, N))
    y = np.zeros((L, E))
    for t in range(L):
        s = np.exp(delta[t][:, None] * A) * s + (delta[t] * x[t])[:, None] * B[t][None, :]
        y[t] = s @ C[t] + p["D"] * x[t]
    y = y * _silu(z)
    return y @ p["out_proj.weight"].T + p.get("out_proj.bias", 0.0)


def _conv_silu(x, p, K):
    """Causal depthwise conv (zeros before the start) and SiLU of x (L, C)."""
    w = p["conv1d.weight"][:, 0, :]
    conv = np.zeros_like(x)
    for t in range(x.shape[0]):
        acc = p.get("conv1d.bias", np.zeros(x.shape[1])).copy()
        for k in range(K):
            tau = t - (K - 1) + k
            if tau >= 0:
                acc += w[:, k] * x[tau]
        conv[t] = acc
    return _silu(conv)


def _mamba2(h, p, cfg):
    """One Mamba-2 direction on one sequence h: (L, d) -> (L, d), one time step and one head at a time."""
    L = h.shape[0]
    N, K = cfg["N"], cfg["K"]
    heads = p["A_log"].shape[0]
    E = p["out_proj.weight"].shape[1]
    P = E // heads
    G = (p["in_proj.weight"].shape[0] - 2 * E - heads) // (2 * N)
    proj = h @ p["in_proj.weight"].T + p.get("in_proj.bias", 0.0)
    z, xbc, dt = proj[:, :E], proj[:, E : 2 * E + 2 * G * N], proj[:, 2 * E + 2 * G * N :]
    xbc = _conv_silu(xbc, p, K)
    x = xbc[:, :E].reshape(L, heads, P)
    B = xbc[:, E : E + G * N].reshape(L, G, N)
    C = xbc[:, E + G * N :].reshape(L, G, N)
    delta = _softplus(dt + p["dt_bias"])
    A = -np.exp(p["A_log"])
    D = p["D"].reshape(heads, -1)  # (heads, 1) or (heads, P)
    s = np.zeros((heads, P, N))
    y = np.zeros((L, heads, P))
    for t in range(L):
        for i in range(heads):
            g = i // (heads // G)
            s[i] = np.exp(delta[t, i] * A[i]) * s[i] + delta[t, i] * np.outer(x[t, i], B[t, g])
            y[t, i] = s[i] @ C[t, g] + D[i] * x[t, i]
    v = (y.reshape(L, E) * _silu(z)).reshape(L, G, E // G)
    v = (v / np.sqrt((v * v).mean(-1, keepdims=True) + 1e-5)).reshape(L, E) * p["norm.weight"]
    return v @ p["out_proj.weight"].T + p.get("out_proj.bias", 0.0)


def _bimamba(h, params, cfg):
    fwd = params["mamba_fwd"]
    mixer = _mamba2 if fwd["A_log"].ndim == 1 else _mamba
    out = mixer(h, fwd, cfg)
    if not cfg["bidirectional"]:
        return out
    rev = dict(params["mamba_rev"])
    if cfg["tie"]:
        for key in ("in_proj.weight", "in_proj.bias", "out_proj.weight", "out_proj.bias"):
            if key in fwd:
                rev[key] = fwd[key]
    out_rev = mixer(h[::-1], rev, cfg)[::-1]
    return out + out_rev if cfg["strategy"] == "add" else out * out_rev


def _layer_params(state, prefix):
    params = {"mamba_fwd": {}, "mamba_rev": {}}
    for key, value in state.items():
        for direction in ("mamba_fwd", "mamba_rev"):
            tag = f"{prefix}.{direction}."
            if key.startswith(tag):
                params[direction][key[len(tag) :]] = value
    return params


def reference_forward(state: dict[str, np.ndarray], config: dict, ids: np.ndarray):
    """ids (L,) -> (logits (L, V), hidden (L, C)) in float64, for a published-format state dict."""
    d = config["d_model"]
    ssm = config.get("ssm_cfg", {})
    rank = ssm.get("dt_rank", "auto")
    cfg = {
        "E": int(ssm.get("expand", 2) * d),
        "N": ssm.get("d_state", 128 if ssm.get("layer") == "Mamba2" else 16),
        "K": ssm.get("d_conv", 4),
        "R": int(np.ceil(d / 16)) if rank == "auto" else rank,
        "bidirectional": config.get("bidirectional", True),
        "tie": config.get("bidirectional_weight_tie", True),
        "strategy": config.get("bidirectional_strategy", "add") or "add",
    }
    rms, eps = config.get("rms_norm", True), config.get("norm_epsilon", 1e-5)
    rcps, fused = config.get("rcps", False), config.get("fused_add_norm", True)
    comp = np.arange(16)
    for key, value in (config.get("complement_map") or {}).items():
        comp[int(key)] = value
    pre = "caduceus.backbone."
    emb = state[
        pre + ("embeddings.word_embeddings.embedding.weight" if rcps else "embeddings.word_embeddings.weight")
    ]

    def norm_params(name):
        return state[pre + name + ".weight"], state.get(pre + name + ".bias", np.zeros(d))

    if not rcps:
        h, res = emb[ids], None
        for i in range(config["n_layer"]):
            res = h if res is None else h + res
            w, b = norm_params(f"layers.{i}.norm")
            h = _bimamba(_norm(res, w, b, eps, rms), _layer_params(state, f"{pre}layers.{i}.mixer"), cfg)
        w, b = norm_params("norm_f")
        hidden = _norm(h + res, w, b, eps, rms)
        return hidden @ emb.T, hidden

    def rc_of(x):  # flip length and channels
        return x[::-1, ::-1]

    h = np.concatenate([emb[ids], emb[comp[ids]][:, ::-1]], axis=1)
    res = None
    for i in range(config["n_layer"]):
        s = h if res is None else h + res
        s1, s2 = s[:, :d], s[:, d:]
        w, b = norm_params(f"layers.{i}.norm")
        if fused:
            res = np.concatenate([s2, s1], axis=1)
            n_f, n_r = _norm(s2, w, b, eps, rms), _norm(s1, w[::-1], b[::-1], eps, rms)
        else:
            res = s
            n_f, n_r = _norm(s1, w, b, eps, rms), _norm(s2, w[::-1], b[::-1], eps, rms)
        params = _layer_params(state, f"{pre}layers.{i}.mixer.submodule")
        h = np.concatenate([_bimamba(n_f, params, cfg), rc_of(_bimamba(rc_of(n_r), params, cfg))], axis=1)
    s = h + res
    w, b = norm_params("norm_f")
    hidden = np.concatenate(
        [_norm(s[:, :d], w, b, eps, rms), _norm(s[:, d:], w[::-1], b[::-1], eps, rms)], axis=1
    )
    logits = hidden[:, :d] @ emb.T + hidden[:, d:][:, ::-1] @ emb[comp].T
    return logits, hidden
