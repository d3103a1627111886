"""The `caduceus` command line: one Typer app, errors as one line on stderr with a documented exit code.

Commands are imported when they run, not when the app starts: their modules pull in torch, pysam
and h5py (seconds), which `caduceus --version` and `caduceus --help` do not need.

Every error ends the run with one line, `caduceus: error: ...`: the tool's own (`errors.py`) and the
option parser's alike (`usage_message` rewords Typer's, which would print a box of library wording).
"""

from __future__ import annotations

import functools
import importlib
import re
import signal
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

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
        "List the published checkpoints: hub id, variant, mixer, size, training length, data and licence.",
    ),
    "download": (
        "caduceus_cli.commands.download",
        "download",
        "Download a checkpoint into the Hugging Face cache, check that it loads, and print how to run it offline.",
    ),
    "info": (
        "caduceus_cli.commands.info",
        "info",
        "Print a checkpoint's variant, mixer, sizes, parameter count, tokenizer, training length and RC handling.",
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


def _plain_placeholders(params: list) -> list:
    """--help as bcftools writes it: a flag shows no value after it, and an argument is its placeholder
    alone (`FASTA`, `[VCF]`). Typer would write `--probs <bool>`, which reads as if `--probs true` were
    how to give it, and `{fasta} <path>`."""
    for param in params:
        if param.param_type_name == "argument":
            usage = param.metavar if param.required else f"[{param.metavar}]"
            param.get_usage_pieces = lambda ctx, usage=usage: [usage]
            param.display_type_rich = lambda ctx: None
        elif param.is_flag:
            param.metavar = ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx: typer.Context) -> list:
        return _plain_placeholders(super().get_params(ctx))


def load_command(name: str) -> TyperCommand:
    """The command `name`, built from its Typer function (importing its module now)."""
    module, function, _ = COMMANDS[name]
    single = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    command = getattr(importlib.import_module(module), function)
    single.command(name, cls=_Command, context_settings=CONTEXT_SETTINGS)(_exit_on_stop_signal(command))
    return typer.main.get_command(single)


class _LazyCommand(TyperCommand):
    """Stands in for a command in listings; parsing its arguments loads the real one."""

    def make_context(self, info_name: str | None, args: list[str], parent: typer.Context | None = None, **extra: Any):
        return load_command(self.name).make_context(info_name, args, parent=parent, **extra)


class _LazyGroup(TyperGroup):
    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, name: str) -> TyperCommand | None:
        return _LazyCommand(name, help=COMMANDS[name][2]) if name in COMMANDS else None

    def get_params(self, ctx: typer.Context) -> list:
        return _plain_placeholders(super().get_params(ctx))


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


def _option_name(param: Any) -> str:
    """How an error names an option or argument: `-o/--output`, or an argument's placeholder (`FASTA`)."""
    if param.param_type_name == "argument":
        return param.metavar or param.name.upper()
    return "/".join(sorted(param.opts, key=len))


def _reason(problem: dict, param: Any) -> str:
    """What is wrong with a value the parser could not convert (`problem`: its pydantic error)."""
    kind, value, limits = problem["type"], str(problem["input"]), problem.get("ctx") or {}
    if kind.startswith("int_"):
        if re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+", value):
            return f"not a whole number (write it without commas: {value.replace(',', '')})"
        return "not a whole number"
    if kind.startswith("float_"):
        return "not a number"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": "at least", "greater_than": "more than",
                 "less_than_equal": "at most", "less_than": "less than"}[kind]  # fmt: skip
        return f"must be {bound} {next(iter(limits.values()))}"
    choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
    if choices:
        names = [str(getattr(choice, "value", choice)) for choice in choices]
        return f"choose {', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else f"only {names[0]}"
    return " ".join(problem["msg"].removeprefix("Value error, ").split())


def usage_message(error: typer.TyperException) -> str | None:
    """The option parser's error as one line in the tool's words, naming what was given; None for the
    help that a bare `caduceus` prints (Click's "no arguments" error, already shown)."""
    kind, ctx, param = type(error).__name__, getattr(error, "ctx", None), getattr(error, "param", None)
    command = ctx.command_path.removeprefix("caduceus").strip() if ctx is not None else ""
    where = f"{command}: " if command else ""
    options = f"(caduceus {command + ' ' if command else ''}-h lists the options)"
    if kind == "NoArgsIsHelpError":
        return None
    if kind == "NoSuchOption":
        near = f"; did you mean {' or '.join(sorted(error.possibilities))}?" if error.possibilities else f" {options}"
        return f"{where}no option {error.option_name}{near}"
    if kind == "MissingParameter" and param is not None:
        return f"{where}{_option_name(param)} is required {options}"
    validation = error.__cause__
    if param is not None and hasattr(validation, "errors"):
        problem = validation.errors()[0]
        return f"{_option_name(param)} {problem['input']}: {_reason(problem, param)}"
    text = " ".join(error.format_message().split())
    if match := re.fullmatch(r"Got unexpected extra argument\(s\) \((.*)\)", text):
        return f"{where}unexpected argument {match.group(1)} {options}"
    if match := re.fullmatch(r"Option '(.*)' requires an argument\.", text):
        return f"{match.group(1)} needs a value"
    if match := re.fullmatch(r"No such command '(.*)'\..*", text):
        return f"no command {match.group(1)}; the commands are {', '.join(COMMANDS)}"
    return text


def _fail(message: str, exit_code: int) -> None:
    from caduceus_cli.terminal import log_to_file

    print(f"caduceus: error: {message}", file=sys.stderr)
    log_to_file(f"error: {message}")
    sys.exit(exit_code)


def main() -> None:
    """Entry point: every error is one line on stderr and a documented exit code (usage errors: 2)."""
    # a closed stdout (`| head`) ends the process at once, as it does bcftools
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    tune_process()  # before any command imports torch
    try:
        with signals.stop_signals():
            code = app(prog_name="caduceus", standalone_mode=False)  # errors come here, not to Typer's boxes
    except CaduceusError as err:
        _fail(str(err), err.exit_code)
    except typer.TyperException as err:
        message = usage_message(err)
        if message is None:
            sys.exit(err.exit_code)
        _fail(message, err.exit_code)
    except typer.Abort:  # end of input at a prompt: there are none, but Click may raise it
        _fail("aborted", 1)
    # without standalone mode Typer returns what --help, --version and typer.Exit ask to exit with
    sys.exit(code if isinstance(code, int) else 0)
