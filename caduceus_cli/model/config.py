"""The Caduceus `config.json`: parsed into a dataclass, validated, and written back in the published format."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from caduceus_cli.errors import CheckpointError

# Fields of ssm_cfg that only matter at initialisation or for kernel choice; accepted and kept, never used.
_SSM_INIT_ONLY = {"dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor", "use_fast_path", "layer_idx"}
_SSM_USED = {"d_state", "d_conv", "expand", "dt_rank", "conv_bias", "bias"}
_STRATEGIES = ("add", "ew_multiply")


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
    def d_state(self) -> int:
        return int(self.ssm_cfg.get("d_state", 16))

    @property
    def d_conv(self) -> int:
        return int(self.ssm_cfg.get("d_conv", 4))

    @property
    def d_inner(self) -> int:
        return int(self.ssm_cfg.get("expand", 2) * self.d_model)

    @property
    def dt_rank(self) -> int:
        rank = self.ssm_cfg.get("dt_rank", "auto")
        return math.ceil(self.d_model / 16) if rank == "auto" else int(rank)

    @property
    def conv_bias(self) -> bool:
        return bool(self.ssm_cfg.get("conv_bias", True))

    @property
    def proj_bias(self) -> bool:
        return bool(self.ssm_cfg.get("bias", False))

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
        unknown = set(config.ssm_cfg) - _SSM_USED - _SSM_INIT_ONLY
        if unknown:
            raise fail("ssm_cfg", f"unsupported field(s) {sorted(unknown)} (this is a Mamba-1 mixer)")
        for key in ("d_state", "d_conv"):
            value = config.ssm_cfg.get(key, 1)
            if not isinstance(value, int) or value < 1:
                raise fail(f"ssm_cfg.{key}", f"must be a positive integer, got {value!r}")
        expand = config.ssm_cfg.get("expand", 2)
        if (
            not isinstance(expand, int | float)
            or expand <= 0
            or float(expand * config.d_model) != config.d_inner
        ):
            raise fail("ssm_cfg.expand", f"expand * d_model must be a positive integer, got {expand!r}")
        rank = config.ssm_cfg.get("dt_rank", "auto")
        if rank != "auto" and (not isinstance(rank, int) or rank < 1):
            raise fail("ssm_cfg.dt_rank", f"must be 'auto' or a positive integer, got {rank!r}")
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
