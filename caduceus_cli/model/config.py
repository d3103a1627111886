"""The Caduceus `config.json`: parsed into a dataclass, validated, and written back in the published format.

`ssm_cfg` configures the mixer of every block, in the vocabulary of the mixer it builds: mamba-ssm's
`Mamba` (Mamba-1: Caduceus, PlantCaduceus) or its `Mamba2` (PlantCAD2). `ssm_cfg["layer"]` names the
kind as mamba-ssm does ("Mamba1", the default, or "Mamba2"); published PlantCAD2 configs do not, so
the loader writes in what the weights say (load.py) before the config is parsed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from caduceus_cli.errors import CheckpointError

# Fields of ssm_cfg that only matter at initialisation or for kernel choice; accepted and kept, never used.
_SSM_INIT_ONLY = {"dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor", "use_fast_path", "layer_idx",
                  "A_init_range", "conv_init", "use_mem_eff_path", "layer"}  # fmt: skip
_STRATEGIES = ("add", "ew_multiply")
SUPPORTED = (
    "caduceus runs masked-language-model checkpoints (CaduceusForMaskedLM: Caduceus, PlantCaduceus, PlantCAD2); "
    "use the base model it was fine-tuned from"
)
MIXER_KINDS = ("Mamba1", "Mamba2")


@dataclass(frozen=True)
class Mamba1Config:
    """mamba-ssm's `Mamba`: a selective scan with a state of d_state per channel."""

    d_state: int = 16
    d_conv: int = 4
    d_inner: int = 512  # expand * d_model
    dt_rank: int = 16
    conv_bias: bool = True
    bias: bool = False  # in_proj / out_proj

    kind = "Mamba1"
    KEYS = frozenset({"d_state", "d_conv", "expand", "dt_rank", "conv_bias", "bias"})

    def describe(self) -> str:
        return f"Mamba-1 (d_inner {self.d_inner}, d_state {self.d_state}, d_conv {self.d_conv}, dt_rank {self.dt_rank})"


@dataclass(frozen=True)
class Mamba2Config:
    """mamba-ssm's `Mamba2`: the SSD, one scalar decay per head of `headdim` channels, B and C shared by
    the heads of a group, and a gated RMSNorm over each group's channels before out_proj."""

    d_state: int = 128
    d_conv: int = 4
    d_inner: int = 512  # expand * d_model
    headdim: int = 64
    ngroups: int = 1
    chunk_size: int = 256  # the GPU kernel's chunk; the result does not depend on it beyond rounding
    d_has_hdim: bool = False  # D per channel (d_inner) instead of per head
    conv_bias: bool = True
    bias: bool = False

    kind = "Mamba2"
    KEYS = frozenset({"d_state", "d_conv", "expand", "headdim", "ngroups", "chunk_size", "D_has_hdim",
                      "conv_bias", "bias", "rmsnorm", "norm_before_gate", "dt_limit", "d_ssm"})  # fmt: skip
    NORM_EPS = 1e-5  # fixed inside Mamba2, not the model's norm_epsilon

    @property
    def nheads(self) -> int:
        return self.d_inner // self.headdim

    @property
    def conv_dim(self) -> int:
        """Channels of the causal conv: x, B and C."""
        return self.d_inner + 2 * self.ngroups * self.d_state

    @property
    def in_proj_dim(self) -> int:
        """[z | x, B, C | dt]."""
        return self.d_inner + self.conv_dim + self.nheads

    def describe(self) -> str:
        return (
            f"Mamba-2 (d_inner {self.d_inner}: {self.nheads} heads of {self.headdim}, {self.ngroups} "
            f"group{'s' if self.ngroups > 1 else ''}, d_state {self.d_state}, d_conv {self.d_conv})"
        )


MixerConfig = Mamba1Config | Mamba2Config


@dataclass
class CaduceusConfig:
    d_model: int = 256
    n_layer: int = 16
    vocab_size: int = 16
    pad_vocab_size_multiple: int = 8
    ssm_cfg: dict[str, Any] = field(default_factory=dict)
    rms_norm: bool = True
    residual_in_fp32: bool = False
    fused_add_norm: bool = True
    norm_epsilon: float = 1e-5
    initializer_cfg: dict[str, Any] | None = None
    bidirectional: bool = True
    bidirectional_strategy: str = "add"
    bidirectional_weight_tie: bool = True
    rcps: bool = False
    complement_map: dict[int, int] | None = None

    # --- derived sizes, read by the model -------------------------------------------------
    @property
    def padded_vocab_size(self) -> int:
        multiple = self.pad_vocab_size_multiple
        return math.ceil(self.vocab_size / multiple) * multiple

    @property
    def mixer(self) -> MixerConfig:
        """The mixer every block builds, from ssm_cfg in its own vocabulary."""
        return parse_mixer(self.ssm_cfg, self.d_model)

    def complement_list(self) -> list[int]:
        """comp[id] for every id of the padded vocabulary, indexed by int(key), identity where absent."""
        table = list(range(self.padded_vocab_size))
        for key, value in (self.complement_map or {}).items():
            if 0 <= int(key) < len(table):
                table[int(key)] = int(value)
        return table

    # --- (de)serialisation ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config.json") -> CaduceusConfig:
        """Validate a parsed config.json; every problem names `where` and the key."""

        def fail(key: str, why: str) -> CheckpointError:
            return CheckpointError(f"{where}: key {key!r}: {why}")

        if raw.get("model_type", "caduceus") != "caduceus":
            raise fail("model_type", f"{raw.get('model_type')!r} is not a Caduceus model")
        architectures = raw.get("architectures") or []
        if architectures and not set(architectures) & {"CaduceusForMaskedLM", "Caduceus"}:
            raise fail("architectures", f"{architectures[0]!r} (a fine-tuned task model) is not supported: {SUPPORTED}")
        kwargs: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name in raw:
                kwargs[name] = raw[name]
        config = cls(**kwargs)
        config.ssm_cfg = dict(config.ssm_cfg or {})
        for key in ("d_model", "n_layer", "vocab_size", "pad_vocab_size_multiple"):
            value = getattr(config, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise fail(key, f"must be a positive integer, got {value!r}")
        for key in (
            "rms_norm",
            "residual_in_fp32",
            "fused_add_norm",
            "bidirectional",
            "bidirectional_weight_tie",
            "rcps",
        ):
            if not isinstance(getattr(config, key), bool):
                raise fail(key, f"must be true or false, got {getattr(config, key)!r}")
        if config.bidirectional_strategy is None:
            config.bidirectional_strategy = "add"
        if config.bidirectional_strategy not in _STRATEGIES:
            raise fail(
                "bidirectional_strategy", f"{config.bidirectional_strategy!r} is not one of {_STRATEGIES}"
            )
        parse_mixer(config.ssm_cfg, config.d_model, fail)
        if not isinstance(config.norm_epsilon, int | float) or config.norm_epsilon <= 0:
            raise fail("norm_epsilon", f"must be a positive number, got {config.norm_epsilon!r}")
        if config.complement_map is not None:
            try:
                config.complement_map = {int(k): int(v) for k, v in config.complement_map.items()}
            except (TypeError, ValueError, AttributeError) as err:
                raise fail("complement_map", "must map token ids to token ids") from err
            comp = config.complement_list()
            if any(not 0 <= c < config.padded_vocab_size for c in comp) or any(
                comp[c] != i for i, c in enumerate(comp)
            ):
                raise fail("complement_map", "must be an involution on the vocabulary ids")
        elif config.rcps:
            raise fail("complement_map", "is required when rcps is true")
        return config

    def to_dict(self) -> dict[str, Any]:
        """The config.json the original code writes (same keys, order and auto_map)."""
        raw: dict[str, Any] = {
            "architectures": ["CaduceusForMaskedLM"],
            "auto_map": {
                "AutoConfig": "configuration_caduceus.CaduceusConfig",
                "AutoModel": "modeling_caduceus.Caduceus",
                "AutoModelForMaskedLM": "modeling_caduceus.CaduceusForMaskedLM",
                "AutoModelForSequenceClassification": "modeling_caduceus.CaduceusForSequenceClassification",
            },
            "bidirectional": self.bidirectional,
            "bidirectional_strategy": self.bidirectional_strategy,
            "bidirectional_weight_tie": self.bidirectional_weight_tie,
            "complement_map": (
                None
                if self.complement_map is None
                else {str(k): v for k, v in sorted(self.complement_map.items())}
            ),
            "d_model": self.d_model,
            "fused_add_norm": self.fused_add_norm,
            "initializer_cfg": self.initializer_cfg,
            "model_type": "caduceus",
            "n_layer": self.n_layer,
            "norm_epsilon": self.norm_epsilon,
            "pad_vocab_size_multiple": self.pad_vocab_size_multiple,
            "rcps": self.rcps,
            "residual_in_fp32": self.residual_in_fp32,
            "rms_norm": self.rms_norm,
            "ssm_cfg": dict(sorted(self.ssm_cfg.items())),
            "torch_dtype": "float32",
            "transformers_version": "4.38.1",
            "vocab_size": self.padded_vocab_size,
        }
        return raw


def parse_mixer(ssm_cfg: dict[str, Any], d_model: int, fail=None) -> MixerConfig:
    """ssm_cfg -> the mixer's config, each kind reading only its own keys. `fail(key, why)` makes the
    error (by default one naming config.json)."""
    if fail is None:

        def fail(key: str, why: str) -> CheckpointError:
            return CheckpointError(f"config.json: key {key!r}: {why}")

    kind = ssm_cfg.get("layer", "Mamba1")
    if kind not in MIXER_KINDS:
        raise fail("ssm_cfg.layer", f"{kind!r} is not a mixer caduceus runs ({' or '.join(MIXER_KINDS)})")
    mixer_cls = Mamba2Config if kind == "Mamba2" else Mamba1Config
    unknown = set(ssm_cfg) - mixer_cls.KEYS - _SSM_INIT_ONLY
    if unknown:
        raise fail("ssm_cfg", f"unsupported field(s) {sorted(unknown)} for a {kind} mixer")
    defaults = mixer_cls()
    sizes = {}
    for key in ("d_state", "d_conv") + (("headdim", "ngroups", "chunk_size") if kind == "Mamba2" else ()):
        value = ssm_cfg.get(key, getattr(defaults, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail(f"ssm_cfg.{key}", f"must be a positive integer, got {value!r}")
        sizes[key] = value
    expand = ssm_cfg.get("expand", 2)
    if not isinstance(expand, int | float) or expand <= 0 or not float(expand * d_model).is_integer():
        raise fail("ssm_cfg.expand", f"expand * d_model must be a positive integer, got {expand!r}")
    inner = int(expand * d_model)
    common = {"d_inner": inner, "conv_bias": bool(ssm_cfg.get("conv_bias", True)), "bias": bool(ssm_cfg.get("bias", False))}
    if kind == "Mamba1":
        rank = ssm_cfg.get("dt_rank", "auto")
        if rank != "auto" and (not isinstance(rank, int) or rank < 1):
            raise fail("ssm_cfg.dt_rank", f"must be 'auto' or a positive integer, got {rank!r}")
        return Mamba1Config(dt_rank=math.ceil(d_model / 16) if rank == "auto" else rank, **sizes, **common)
    _check_mamba2_options(ssm_cfg, inner, fail)
    if inner % sizes["headdim"]:
        raise fail("ssm_cfg.headdim", f"{sizes['headdim']} does not divide d_inner {inner}")
    if (inner // sizes["headdim"]) % sizes["ngroups"]:
        raise fail("ssm_cfg.ngroups", f"{sizes['ngroups']} does not divide the {inner // sizes['headdim']} heads")
    return Mamba2Config(d_has_hdim=bool(ssm_cfg.get("D_has_hdim", False)), **sizes, **common)


def _check_mamba2_options(ssm_cfg: dict[str, Any], inner: int, fail) -> None:
    """Mamba2 options that change its function: only the published PlantCAD2 settings are built."""
    fixed = {"rmsnorm": True, "norm_before_gate": False}
    for key, value in fixed.items():
        if ssm_cfg.get(key, value) != value:
            raise fail(f"ssm_cfg.{key}", f"only {str(value).lower()} is supported, got {ssm_cfg[key]!r}")
    if ssm_cfg.get("d_ssm") not in (None, inner):
        raise fail(
            "ssm_cfg.d_ssm", f"a gated MLP beside the SSM (d_ssm {ssm_cfg['d_ssm']} < d_inner {inner}) is not supported"
        )
    limit = ssm_cfg.get("dt_limit")
    if limit is not None and (len(limit) != 2 or limit[0] != 0 or limit[1] != float("inf")):
        raise fail("ssm_cfg.dt_limit", f"a clamped dt ({limit!r}) is not supported")
