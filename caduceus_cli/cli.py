"""The `caduceus` command line: one Typer app, errors as one line on stderr with a documented exit code."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from caduceus_cli import __version__
from caduceus_cli.commands.common import log_to_file
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


def _exit_130_on_interrupt(command: Callable) -> Callable:
    """Ctrl-C ends a command with the shell's convention (128 + SIGINT), not Click's "Aborted!" exit 1.

    A command may say what the interrupt left (embed: how to resume) as the KeyboardInterrupt's message.
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as interrupt:
            print(f"caduceus: interrupted{f'; {interrupt}' if str(interrupt) else ''}", file=sys.stderr)
            raise typer.Exit(130) from None

    return run


for _name, _command in [
    ("embed", embed),
    ("score-variants", score_variants),
    ("merge", merge),
    ("info", info),
    ("doctor", doctor),
]:
    app.command(_name)(_exit_130_on_interrupt(_command))


def main() -> None:
    """Entry point. Usage errors exit 2, as Typer/Click report them."""
    # a closed stdout (`| head`) ends the process at once, as it does bcftools
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        app()
    except CaduceusError as err:
        print(f"caduceus: error: {err}", file=sys.stderr)
        log_to_file(f"error: {err}")
        sys.exit(err.exit_code)
