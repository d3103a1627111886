"""`caduceus info MODEL`: what a checkpoint is, without running it."""

from __future__ import annotations

from typing import Annotated

import typer

from caduceus_cli.commands.options import RevisionOpt
from caduceus_cli.model.load import default_model_path, load_model
from caduceus_cli.scoring.settings import MAX_DEFAULT_WINDOW
from caduceus_cli.windows import FALLBACK_WINDOW


def info(
    model: Annotated[
        str | None, typer.Argument(metavar="MODEL", help="Checkpoint folder or hub id. Default: the shipped model.")
    ] = None,
    revision: RevisionOpt = None,
) -> None:
    """Print a checkpoint's variant, mixer, sizes, parameter count, tokenizer, training length and RC handling."""
    source = model if model is not None else str(default_model_path())
    loaded = load_model(source, revision=revision)
    config = loaded.config
    n_params = sum(p.numel() for p in loaded.parameters())
    rc = (
        "reverse-complement equivariant (PS): one pass gives RC-conjoined output"
        if config.rcps
        else "post-hoc conjoined (PH): forward and reverse-complement passes averaged"
    )
    rows = [
        ("source", loaded.provenance["source"]),
        ("revision", loaded.provenance["revision"]),
        ("weights sha256", loaded.provenance["sha256"]),
        ("variant", loaded.variant.upper()),
        ("d_model", config.d_model),
        ("n_layer", config.n_layer),
        ("mixer", config.mixer.describe()),
        ("vocabulary (padded)", config.padded_vocab_size),
        (
            "bidirectional",
            f"{config.bidirectional} ({config.bidirectional_strategy}, tied={config.bidirectional_weight_tie})",
        ),
        ("norm", "RMSNorm" if config.rms_norm else "LayerNorm"),
        ("parameters", f"{n_params:,}"),
        ("stored dtype", loaded.stored_dtype),
        ("embedding width", config.d_model),
        ("tokenizer", loaded.tokenizer.describe()),
        ("tokenizer from", loaded.tokenizer.source),
        ("training length", _training_length(loaded)),
        ("RC handling", rc),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")


def _training_length(model) -> str:
    if model.default_window is None:
        return (
            f"unknown: embed and track tile at {FALLBACK_WINDOW:,}, score-variants and ism use "
            f"{MAX_DEFAULT_WINDOW:,} (give --window)"
        )
    return f"{model.default_window:,} (from {model.window_source})"
