"""`caduceus download ID`: fetch a checkpoint into the Hugging Face cache on a machine with network, check
that it loads, and say how compute nodes then run it offline."""

from __future__ import annotations

from typing import Annotated

import typer

from caduceus_cli.commands.options import RevisionOpt
from caduceus_cli.model.load import check_hub_id, fetch, load_model


def download(
    model: Annotated[
        str, typer.Argument(metavar="ID", help="Hub id, e.g. kuleshov-group/PlantCaduceus_l32 (see caduceus models).")
    ],
    revision: RevisionOpt = None,
) -> None:
    """Download a checkpoint into the Hugging Face cache, check that it loads, and print how to run it offline."""
    from huggingface_hub import constants

    check_hub_id(model)
    folder, commit = fetch(model, revision)
    loaded = load_model(str(folder))  # the files just fetched, read as every command will read them
    window = f"{loaded.default_window:,}" if loaded.default_window else "not recorded"
    typer.echo(f"{model} revision {commit}: {folder}")
    typer.echo(
        f"loads: {loaded.variant.upper()}, d_model {loaded.config.d_model}, {loaded.config.n_layer} layers, "
        f"{sum(p.numel() for p in loaded.parameters()):,} parameters, training length {window}; "
        f"tokenizer {loaded.tokenizer.describe()}"
    )
    typer.echo(
        "on compute nodes without network, with this cache on a shared file system:\n"
        f"  export HF_HUB_CACHE={constants.HF_HUB_CACHE}\n"
        "  export HF_HUB_OFFLINE=1\n"
        f"  caduceus score-variants calls.vcf.gz --fasta genome.fa --model {model} --revision {commit} -o out.vcf.gz"
    )
