"""The `caduceus` command line: one Typer app, errors as one line on stderr with a documented exit code.

Commands are imported when they run, not when the app starts: their modules pull in torch, pysam
and h5py (seconds), which `caduceus --version` and `caduceus --help` do not need.
"""

from __future__ import annotations

import functools
import importlib
import signal
import sys
from collections.abc import Callable
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from caduceus_cli import __version__, signals
from caduceus_cli.errors import CaduceusError
from caduceus_cli.runtime import tune_process

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

# name -> (module, function, the one-line help `caduceus --help` lists; the function's docstring starts so)
COMMANDS = {
    "embed": (
        "caduceus_cli.commands.embed",
        "embed",
        "Embed FASTA regions (all contigs by default) with a Caduceus model into an HDF5 file.",
    ),
    "score-variants": (
        "caduceus_cli.commands.score_variants",
        "score_variants",
        "Score every variant of a VCF/BCF with the model; every record is written back, in order.",
    ),
    "calibrate": (
        "caduceus_cli.commands.calibrate",
        "calibrate",
        "Score random changes at random sites of a genome: the background of score-variants --background.",
    ),
    "track": (
        "caduceus_cli.commands.track",
        "track",
        "Write per-base model scores of FASTA regions (all contigs by default) as bigWig or bedGraph tracks.",
    ),
    "ism": (
        "caduceus_cli.commands.ism",
        "ism",
        "Score every single-base change of a region (in-silico saturation mutagenesis) into a table.",
    ),
    "merge": (
        "caduceus_cli.commands.merge",
        "merge",
        "Join shard files into what a single unsharded run writes: regions, records or track values in order.",
    ),
    "models": (
        "caduceus_cli.commands.models",
        "models",
        "List the published checkpoints: hub id, variant, size, training length, data and licence.",
    ),
    "download": (
        "caduceus_cli.commands.download",
        "download",
        "Download a checkpoint into the Hugging Face cache, check that it loads, and print how to run it offline.",
    ),
    "info": (
        "caduceus_cli.commands.info",
        "info",
        "Print a checkpoint's variant, sizes, parameter count, tokenizer, training length and RC handling.",
    ),
    "doctor": (
        "caduceus_cli.commands.doctor",
        "doctor",
        "Report versions, the backend `--device auto` would use, and run a tiny model on it.",
    ),
}


def _exit_on_stop_signal(command: Callable) -> Callable:
    """Ctrl-C and SIGTERM end a command with the shell's convention (128 + signal: 130, 143), not Click's
    "Aborted!" exit 1, in one line saying how to continue (`caduceus_cli.signals`).

    A command says what the stop left (embed: how to resume) as the KeyboardInterrupt's message.
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as interrupt:
            left = str(interrupt) or "no output was kept; rerun the same command"
            print(f"caduceus: {signals.stopped_by()}; {left}", file=sys.stderr)
            raise typer.Exit(signals.exit_code()) from None

    return run


def load_command(name: str) -> click.Command:
    """The Click command `name`, built from its Typer function (importing its module now)."""
    module, function, _ = COMMANDS[name]
    single = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    command = getattr(importlib.import_module(module), function)
    single.command(name, context_settings=CONTEXT_SETTINGS)(_exit_on_stop_signal(command))
    return typer.main.get_command(single)


class _LazyCommand(click.Command):
    """Stands in for a command in listings; parsing its arguments loads the real one."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any):
        return load_command(self.name).make_context(info_name, args, parent=parent, **extra)


class _LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return _LazyCommand(name, help=COMMANDS[name][2]) if name in COMMANDS else None


app = typer.Typer(
    name="caduceus",
    cls=_LazyGroup,
    help="Run Caduceus DNA language models over genomes and variant files.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings=CONTEXT_SETTINGS,
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


def main() -> None:
    """Entry point. Usage errors exit 2, as Typer/Click report them."""
    # a closed stdout (`| head`) ends the process at once, as it does bcftools
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    tune_process()  # before any command imports torch
    try:
        with signals.stop_signals():
            app()
    except CaduceusError as err:
        from caduceus_cli.terminal import log_to_file

        print(f"caduceus: error: {err}", file=sys.stderr)
        log_to_file(f"error: {err}")
        sys.exit(err.exit_code)
