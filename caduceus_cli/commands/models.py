"""`caduceus models`: the published Caduceus checkpoints this tool knows, and which are cached here."""

from __future__ import annotations

import typer

from caduceus_cli.model.zoo import PUBLISHED

COLUMNS = ("hub id", "variant", "d_model", "layers", "parameters", "window", "cached", "data", "licence")


def models() -> None:
    """List the published checkpoints: hub id, variant, size, training length, data and licence."""
    from huggingface_hub import try_to_load_from_cache

    rows = [COLUMNS] + [
        (
            m.hub_id,
            m.variant.upper(),
            str(m.d_model),
            str(m.n_layer),
            f"{m.parameters / 1e6:.1f}M",
            f"{m.training_length:,}",
            "yes" if isinstance(try_to_load_from_cache(m.hub_id, "config.json"), str) else "no",
            m.data,
            m.licence,
        )
        for m in PUBLISHED
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        typer.echo("  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
