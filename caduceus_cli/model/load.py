"""Checkpoints: a local folder or a hub id -> a CaduceusForMaskedLM with its weights tied back.

The published `model.safetensors` leaves out the tensors that share storage with others: the
reverse direction's in_proj/out_proj (tied to the forward direction's) and the LM head (tied to
the embedding). Our modules have no such duplicates, so the files load by name; copies of those
tensors in other checkpoints are accepted only if they really equal what they are tied to.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from caduceus_cli.device import DTYPES
from caduceus_cli.errors import CheckpointError
from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.model.config import SUPPORTED, CaduceusConfig
from caduceus_cli.model.zoo import published, published_with_sizes
from caduceus_cli.tokens import TOKENIZER_FILES, Tokenizer, read_tokenizer

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
DEFAULT_MODEL = "caduceus-ph-tair10"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
NO_REVISION = "none"  # provenance revision of a local folder: one spelling in every output
_SEQLEN_IN_NAME = re.compile(r"seqlen-(\d+)(k?)", re.IGNORECASE)


def load_model(
    source: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    revision: str | None = None,
) -> CaduceusForMaskedLM:
    """Load a Caduceus checkpoint from a folder (config.json, weights, tokenizer files) or a hub id.

    The model comes back in eval mode on `device` in `dtype`, with its `tokenizer` (read from the
    checkpoint's own files), `provenance` (source, revision, "none" for a local folder, and sha256
    of the weights file), `default_window` (its training length when known), `window_source`
    (where that length came from) and `stored_dtype` (of the weights file's floating tensors).
    """
    folder, resolved_revision = _resolve(str(source), revision)
    weights_path = _weights_file(folder)
    state = _read_weights(weights_path)
    config = read_config(folder, weights_path, state)
    tokenizer = read_tokenizer(folder)
    tokenizer.check_fits(config.padded_vocab_size, config.complement_map, str(folder / "config.json"))
    stored = sorted({str(t.dtype).removeprefix("torch.") for t in state.values() if t.is_floating_point()})
    model = CaduceusForMaskedLM(config, tokenizer)
    _load_state(model, state, weights_path)
    torch_dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
    model = model.to(device=device, dtype=torch_dtype).eval()
    model.provenance = {
        "source": str(source),
        "revision": resolved_revision or NO_REVISION,
        "sha256": file_sha256(weights_path),
    }
    model.default_window, model.window_source = training_length(folder, str(source), config, tokenizer)
    model.stored_dtype = ", ".join(stored)
    return model


CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def default_model_path() -> Path:
    """The shipped model, used when no --model is given: the checkout's weights/ folder, or where
    a wheel install puts it (<prefix>/share/caduceus-cli/weights)."""
    checkout = CHECKOUT_WEIGHTS / DEFAULT_MODEL
    installed = Path(sys.prefix) / "share" / "caduceus-cli" / "weights" / DEFAULT_MODEL
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


def save_checkpoint(
    model: CaduceusForMaskedLM, folder: str | os.PathLike, max_length: int | None = None
) -> None:
    """Write config.json + model.safetensors as the original `save_pretrained` does (float32,
    tied tensors left out), and tokenizer_config.json recording the training length."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    state = {
        key: (tensor.float() if tensor.is_floating_point() else tensor).detach().cpu().contiguous()
        for key, tensor in model.state_dict().items()
    }
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if max_length is not None:
        (folder / "tokenizer_config.json").write_text(
            json.dumps({"model_max_length": max_length}, indent=2) + "\n"
        )


def _resolve(source: str, revision: str | None) -> tuple[Path, str | None]:
    """A local folder, or a hub repository downloaded (or found offline) in the Hugging Face cache."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path}: a model is a folder with config.json and model.safetensors")
        _refuse_adapter(path)
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path}: not a Caduceus checkpoint (no config.json)")
        return path, revision
    if _names_a_folder(source):
        raise CheckpointError(f"{source}: no such folder")
    if not _HUB_ID.match(source):
        raise CheckpointError(f"{source}: no such folder, and not a hub id of the form owner/name")
    return fetch(source, revision)


def _refuse_adapter(folder: Path) -> None:
    """A PEFT adapter (LoRA weights for a fine-tuned task, e.g. PlantCAD2's) is not a model of its own."""
    adapter = folder / "adapter_config.json"
    if not adapter.is_file():
        return
    try:
        base = json.loads(adapter.read_text()).get("base_model_name_or_path") or "not named"
    except (json.JSONDecodeError, AttributeError):
        base = "not named"
    raise CheckpointError(f"{folder}: a PEFT adapter (adapter_config.json; base model {base}), not a model: {SUPPORTED}")


def check_hub_id(text: str) -> None:
    """`text` names a hub repository (owner/name), not a local folder or anything else: what
    `caduceus download` takes. A CheckpointError says which it is instead."""
    if Path(text).expanduser().exists() or _names_a_folder(text):
        raise CheckpointError(
            f"{text}: a local path; download takes a hub id (owner/name), and a local checkpoint needs no download: "
            f"pass it as --model {text}"
        )
    if not _HUB_ID.match(text):
        raise CheckpointError(
            f"{text}: not a hub id; give owner/name, e.g. kuleshov-group/PlantCaduceus_l32 (caduceus models lists them)"
        )


def _names_a_folder(source: str) -> bool:
    """A value that can only mean a local path: it starts with '.', '/' or '~', or its first part is a
    folder here (`mydir/model` with `mydir/` present), so a missing one is not looked up on the hub."""
    return source.startswith((".", "/", "~")) or Path(source).expanduser().parent.is_dir() and "/" in source


def fetch(repo_id: str, revision: str | None = None) -> tuple[Path, str]:
    """The folder of hub repository `repo_id` in the Hugging Face cache, downloaded there when missing
    (only the files a checkpoint needs), and the commit it holds. `HF_HOME`/`HF_HUB_CACHE` and
    `HF_HUB_OFFLINE` apply as for every Hugging Face tool: offline, only the cache is read."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = ["config.json", "adapter_config.json", *TOKENIZER_FILES, "model.safetensors"]
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
        if not (folder / "model.safetensors").is_file():  # older checkpoints (PlantCaduceus) hold a .bin
            folder = Path(
                snapshot_download(repo_id, revision=revision, allow_patterns=[*patterns, "pytorch_model.bin"])
            )
    except LocalEntryNotFoundError as err:
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the hub cannot be reached (no network?)"
        raise CheckpointError(
            f"{repo_id}: not in the Hugging Face cache and {why}; download it once on a machine with "
            f"network (caduceus download {repo_id}), or pass a local folder"
        ) from err
    except RevisionNotFoundError as err:
        raise CheckpointError(f"{repo_id}: no revision {revision!r} on the Hugging Face hub") from err
    except RepositoryNotFoundError as err:
        raise CheckpointError(f"{repo_id}: no such model on the Hugging Face hub, and no such folder here") from err
    except HFValidationError as err:
        raise CheckpointError(f"{repo_id}: not a valid hub id (owner/name), and no such folder here") from err
    _refuse_adapter(folder)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{repo_id}: not a Caduceus checkpoint (no config.json in the repository)")
    # the snapshot folder is named after the commit it holds
    return folder, folder.name


def _weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder}: no weights file ({' or '.join(WEIGHT_FILES)})")


def read_config(folder: Path, weights: Path, tensors: dict[str, torch.Tensor]) -> CaduceusConfig:
    """config.json, with what the weights' tensors say of the mixer written in (`mixer_from_weights`)."""
    config_path = folder / "config.json"
    try:
        raw = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_path}: not valid JSON ({err})") from err
    raw["ssm_cfg"] = mixer_from_weights(raw, tensors, weights, config_path)
    return CaduceusConfig.from_dict(raw, where=str(config_path))


def _read_weights(path: Path, only: re.Pattern | None = None) -> dict[str, torch.Tensor]:
    """The weights file's tensors, or only those whose names `only` matches, read without the others (a
    safetensors file reads tensors one by one, a pickled state dict is memory-mapped)."""
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as weights:
                names = weights.keys()  # a safe_open handle is not a mapping
                return {key: weights.get_tensor(key) for key in names if only is None or only.match(key)}
        # weights_only: a pickled checkpoint must never be able to run code
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=only is not None)
        return {key: tensor for key, tensor in state.items() if only is None or only.match(key)}
    except (SafetensorError, pickle.UnpicklingError, OSError, RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read weights ({str(err).splitlines()[0]})") from err


# the forward mixer of the first block, PH (mixer.) or PS (mixer.submodule.)
_FIRST_MIXER = re.compile(r"^caduceus\.backbone\.layers\.0\.mixer\.(?:submodule\.)?mamba_fwd\.")


def mixer_from_weights(raw: dict, state: dict[str, torch.Tensor], weights: Path, config_path: Path) -> dict:
    """config.json's ssm_cfg with what the weights say of the mixer written in. A Mamba-2 mixer has a 1-D
    A_log (one value per head) and no x_proj / dt_proj; its heads, head size and groups follow from the
    shapes (published configs state none of them), and are checked against what the config does state."""
    ssm_cfg = dict(raw.get("ssm_cfg") or {})
    tensors = {key[match.end() :]: (key, t) for key, t in state.items() if (match := _FIRST_MIXER.match(key))}
    if "A_log" not in tensors:
        return ssm_cfg  # built as the config says; the missing tensors are reported by name at load
    a_log_key, a_log = tensors["A_log"]
    kind = {1: "Mamba2", 2: "Mamba1"}.get(a_log.ndim)
    other_kinds_tensor = "x_proj.weight" if kind == "Mamba2" else "dt_bias"
    if kind is None or other_kinds_tensor in tensors:
        raise CheckpointError(
            f"{weights}: cannot tell the mixer: tensor {a_log_key!r} has shape {tuple(a_log.shape)} (Mamba-1: "
            "[d_inner, d_state] beside x_proj and dt_proj; Mamba-2: [heads] beside dt_bias)"
        )
    stated = ssm_cfg.get("layer", kind)
    if stated != kind:
        raise CheckpointError(
            f"{config_path}: key 'ssm_cfg.layer' is {stated!r}, but tensor {a_log_key!r} of shape "
            f"{tuple(a_log.shape)} is a {kind} mixer's"
        )
    if kind == "Mamba1":
        return ssm_cfg
    return {**ssm_cfg, **_mamba2_layout(raw, ssm_cfg, tensors, weights, config_path)}


def _mamba2_layout(raw: dict, ssm_cfg: dict, tensors: dict, weights: Path, config_path: Path) -> dict:
    """layer, headdim, ngroups (and D_has_hdim) of a Mamba-2 mixer from its tensors' shapes."""
    if not all(name in tensors for name in ("in_proj.weight", "out_proj.weight", "D")):
        return {"layer": "Mamba2"}  # the missing tensors are reported by name at load
    (_, a_log), (in_key, in_proj), (out_key, out_proj), (d_key, skip) = (
        tensors[name] for name in ("A_log", "in_proj.weight", "out_proj.weight", "D")
    )
    heads, inner = a_log.numel(), out_proj.shape[-1]
    d_model, expand = raw.get("d_model"), ssm_cfg.get("expand", 2)
    if isinstance(d_model, int) and isinstance(expand, int | float) and inner != expand * d_model:
        raise CheckpointError(
            f"{weights}: tensor {out_key!r} has d_inner {inner}, but config.json's expand {expand} x d_model "
            f"{d_model} is {expand * d_model:g}"
        )
    if inner % heads:
        raise CheckpointError(
            f"{weights}: tensor {out_key!r}: d_inner {inner} is not a whole number of the {heads} heads of A_log"
        )
    d_state = ssm_cfg.get("d_state", 128)
    for_bc = in_proj.shape[0] - 2 * inner - heads
    if not isinstance(d_state, int) or d_state < 1 or for_bc <= 0 or for_bc % (2 * d_state):
        raise CheckpointError(
            f"{weights}: tensor {in_key!r} has {in_proj.shape[0]} rows: z and x ({2 * inner}) and dt ({heads}) "
            f"leave {for_bc} for B and C, not a multiple of 2 x d_state {d_state} (config.json ssm_cfg.d_state)"
        )
    if skip.shape[0] not in (heads, inner):
        raise CheckpointError(
            f"{weights}: tensor {d_key!r} has shape {tuple(skip.shape)}: neither one per head ({heads}) nor "
            f"per channel ({inner})"
        )
    layout = {"layer": "Mamba2", "headdim": inner // heads, "ngroups": for_bc // (2 * d_state)}
    for key, value in layout.items():
        if ssm_cfg.get(key, value) != value:
            raise CheckpointError(
                f"{config_path}: key 'ssm_cfg.{key}' is {ssm_cfg[key]!r}, but the shapes of {in_key!r} and "
                f"{out_key!r} give {value}"
            )
    if skip.shape[0] == inner != heads:
        layout["D_has_hdim"] = True
    return layout


def _tied_copies(config: CaduceusConfig) -> dict[str, str]:
    """Names a checkpoint may carry for tied tensors -> the stored name they must equal."""
    mixer = "mixer.submodule" if config.rcps else "mixer"
    embedding = "embeddings.word_embeddings" + (".embedding" if config.rcps else "")
    copies = {
        (
            "lm_head.lm_head.weight" if config.rcps else "lm_head.weight"
        ): f"caduceus.backbone.{embedding}.weight"
    }
    if config.bidirectional and config.bidirectional_weight_tie:
        for i in range(config.n_layer):
            prefix = f"caduceus.backbone.layers.{i}.{mixer}"
            for proj in ("in_proj", "out_proj"):
                for part in ("weight", "bias") if config.mixer.bias else ("weight",):
                    copies[f"{prefix}.mamba_rev.{proj}.{part}"] = f"{prefix}.mamba_fwd.{proj}.{part}"
    return copies


def _load_state(model: CaduceusForMaskedLM, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    for copy, original in _tied_copies(model.config).items():
        if copy in state:
            tensor = state.pop(copy)
            if original in state and not torch.equal(tensor, state[original]):
                raise CheckpointError(
                    f"{path}: tensor {copy!r} differs from {original!r}, but the config ties them"
                )
    missing = [key for key in expected if key not in state]
    if missing:
        raise CheckpointError(
            f"{path}: missing tensor {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        raise CheckpointError(
            f"{path}: unexpected tensor {unexpected[0]!r} for this config.json"
            + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{path}: tensor {key!r} has shape {tuple(tensor.shape)}, config.json implies {tuple(expected[key].shape)}"
            )
        if not tensor.is_floating_point() and expected[key].is_floating_point():
            raise CheckpointError(f"{path}: tensor {key!r} has dtype {tensor.dtype}, expected floating point")
    model.load_state_dict(state, strict=True)


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks (weights, genomes: never whole in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CheckpointFacts:
    config: CaduceusConfig  # with the mixer the weights say
    training_length: int | None
    weights: Path


def checkpoint_facts(source: str, revision: str | None = None) -> CheckpointFacts:
    """A checkpoint folder's or hub id's config and training length, as `load_model` finds them, read from
    its small files and its first mixer's tensors without loading the other weights: commands check
    their window options against it first, and workflows size their jobs by it."""
    folder, _ = _resolve(source, revision)
    weights = _weights_file(folder)
    config = read_config(folder, weights, _read_weights(weights, only=_FIRST_MIXER))
    return CheckpointFacts(config, training_length(folder, source, config, read_tokenizer(folder))[0], weights)


# Families a checkpoint folder's own files identify when nothing records its length: GPN's character tokenizer
# (tokenizer.json) with Mamba-1 mixers is PlantCaduceus, with Mamba-2 mixers PlantCAD2.
_GPN_FAMILIES = {"Mamba1": ("PlantCaduceus", 512), "Mamba2": ("PlantCAD2", 8192)}


def training_length(
    folder: Path, source: str, config: CaduceusConfig | None = None, tokenizer: Tokenizer | None = None
) -> tuple[int | None, str | None]:
    """The sequence length the model was trained at, and where that came from, first found of:
    `model_max_length` in tokenizer_config.json when it is a real length (PlantCaduceus stores a 1e30
    placeholder); the published checkpoint the source names (`zoo.published`); the hub name
    (`seqlen-131k`); and, for a local copy named otherwise, from its config and tokenizer: the published
    checkpoint of the same sizes, else the family its tokenizer and mixer make (`_GPN_FAMILIES`)."""
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file():
        try:
            length = json.loads(tokenizer_config.read_text()).get("model_max_length")
        except json.JSONDecodeError:
            length = None
        if isinstance(length, int) and 0 < length < 10**9:
            return length, "tokenizer_config.json model_max_length"
    known = published(source)
    if known is not None and known.training_length is not None:
        return known.training_length, f"published checkpoint {known.hub_id}"
    match = _SEQLEN_IN_NAME.search(source)
    if match and match.group(2):
        # "131k" and "1k" are how the hub names 131,072 and 1,024: the nearest power of two
        return 2 ** round(math.log2(int(match.group(1)) * 1000)), f"the name's {match.group(0)}"
    if match:
        return int(match.group(1)), f"the name's {match.group(0)}"
    if config is None:
        return None, None
    variant, mixer = "ps" if config.rcps else "ph", config.mixer.kind
    same_sizes = published_with_sizes(variant, mixer, config.d_model, config.n_layer)
    if same_sizes is not None:
        return same_sizes.training_length, (
            f"the sizes of published checkpoint {same_sizes.hub_id} ({variant.upper()}, {mixer}, d_model "
            f"{config.d_model}, {config.n_layer} layers)"
        )
    if tokenizer is not None and tokenizer.source == "tokenizer.json":
        family, length = _GPN_FAMILIES[mixer]
        return length, f"the {family} family: GPN's tokenizer.json with {mixer} mixers"
    return None, None
