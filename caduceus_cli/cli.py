"""The `caduceus` command line: one Typer app, errors as one line on stderr with a documented exit code."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from caduceus_cli import __version__
from caduceus_cli.commands.doctor import doctor
from caduceus_cli.commands.embed import embed
from caduceus_cli.commands.info import info
from caduceus_cli.commands.merge import merge
from caduceus_cli.commands.score_variants import score_variants
from caduceus_cli.errors import CaduceusError

app = typer.Typer(
    name="caduceus",
    help="Run Caduceus DNA language models over genomes and variant files.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"caduceus-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Run Caduceus DNA language models over genomes and variant files."""


app.command("embed")(embed)
app.command("score-variants")(score_variants)
app.command("merge")(merge)
app.command("info")(info)
app.command("doctor")(doctor)


def main() -> None:
    """Entry point. Usage errors exit 2 and Ctrl-C exits 1, both handled by Typer/Click themselves."""
    try:
        app()
    except CaduceusError as err:
        print(f"caduceus: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
