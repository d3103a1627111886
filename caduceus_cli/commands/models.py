"""`caduceus models`: the published Caduceus checkpoints this tool knows, and which are cached here."""

from __future__ import annotations

import typer

from caduceus_cli.model.zoo import PUBLISHED

COLUMNS = ("hub id", "variant", "mixer", "d_model", "layers", "parameters", "window", "cached", "data", "licence")
UNKNOWN = "?"  # not published where we could read it: `caduceus info` reads it from the checkpoint


def models() -> None:
    """List the published checkpoints: hub id, variant, mixer, size, training length, data and licence."""
    from huggingface_hub import try_to_load_from_cache

    rows = [COLUMNS] + [
        (
            m.hub_id,
            _or_unknown(m.variant, str.upper),
            m.mixer,
            _or_unknown(m.d_model, str),
            _or_unknown(m.n_layer, str),
            _or_unknown(m.parameters, lambda n: f"{n / 1e6:.1f}M"),
            _or_unknown(m.training_length, lambda n: f"{n:,}"),
            "yes" if isinstance(try_to_load_from_cache(m.hub_id, "config.json"), str) else "no",
            m.data,
            m.licence,
        )
        for m in PUBLISHED
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        typer.echo("  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def _or_unknown(value: int | str | None, show) -> str:
    return UNKNOWN if value is None else show(value)
