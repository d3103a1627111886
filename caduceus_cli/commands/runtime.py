"""The model and runtime options every command that runs a model takes, and the model they open.

`runtime_options` adds them to a command's signature, applies the process-wide ones (log, threads)
and hands the command one `Runtime`, which loads the model and makes its engine.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, fields

from caduceus_cli.commands.options import (
    BatchSizeOpt,
    DeviceOpt,
    DtypeOpt,
    LogFileOpt,
    ModelOpt,
    QuietOpt,
    RevisionOpt,
    ThreadsOpt,
)
from caduceus_cli.errors import UsageError

log = logging.getLogger("caduceus")


@dataclass(frozen=True)
class Runtime:
    """The model and runtime options of a command (`runtime_options`), and what they open."""

    model: ModelOpt = None
    revision: RevisionOpt = None
    device: DeviceOpt = "auto"
    dtype: DtypeOpt = "auto"
    batch_size: BatchSizeOpt = None
    threads: ThreadsOpt = None
    quiet: QuietOpt = False
    log_file: LogFileOpt = None

    def load_model(self):
        """The asked-for checkpoint (the shipped default when none) on the asked-for device and dtype."""
        return open_model(self.model, self.revision, self.device, self.dtype)

    def trained_window(self) -> int | None:
        """The checkpoint's training length (what --window defaults to), read from its small files: the
        window options are checked against it before the weights load."""
        from caduceus_cli.model.load import checkpoint_facts

        return checkpoint_facts(model_source(self.model), self.revision).training_length

    def engine(self, model):
        from caduceus_cli.engine import Engine

        return Engine(model, batch_size=self.batch_size)


def runtime_options(command: Callable) -> Callable:
    """Give a command the `Runtime` options (appended to its own, in `--help`'s "Model and runtime"
    panel): they are parsed by Typer from the signature built here, the log and threads are set up
    before the command runs, and the command receives them as its `runtime` argument."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "runtime"]
    hints = inspect.get_annotations(Runtime, eval_str=True)
    added = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
        for f in fields(Runtime)
    ]

    @functools.wraps(command)
    def run(**options):
        runtime = Runtime(**{f.name: options.pop(f.name) for f in fields(Runtime)})
        from caduceus_cli.terminal import setup_logging

        setup_logging(runtime.quiet, runtime.log_file)
        set_threads(runtime.threads)
        return command(runtime=runtime, **options)

    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
    run.__signature__ = inspect.Signature(parameters)
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run


def set_threads(threads: int | None) -> int:
    """Apply --threads, by default every CPU this process may use (its affinity mask: a cluster job's
    allocation, not the node's cores); returns the count."""
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if threads < 1:
        raise UsageError(f"--threads {threads}: must be at least 1")
    import torch  # here: the commands that run no model (merge, info's listing) do not pay for it

    torch.set_num_threads(threads)
    return threads


def model_source(model: str | None) -> str:
    """What -m names: a folder or hub id as given, or the shipped model's folder when it is not given."""
    from caduceus_cli.model.load import default_model_path

    return model if model is not None else str(default_model_path())


# What a run on the shipped model is good for: on the example VCF its mean llr is highest for nonsense
# SNVs and lowest for synonymous ones, the reverse of biology (README, docs/models.md).
SHIPPED_MODEL_NOTE = (
    "no --model: this is the shipped demonstration model, for trying the tool, not for biology; for real "
    "data use a published checkpoint, e.g. -m kuleshov-group/PlantCaduceus_l32 (plants) or "
    "-m kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16 (human); caduceus models lists them"
)


def open_model(model: str | None, revision: str | None, device: str, dtype: str):
    """Load the asked-for checkpoint (the shipped default when none) on the resolved device and dtype."""
    from caduceus_cli.device import resolve_device, resolve_dtype
    from caduceus_cli.model.load import load_model

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    source = model_source(model)
    loaded = load_model(source, device=torch_device, dtype=torch_dtype, revision=revision)
    log.info(
        "model %s (%s, %s, d_model %d, %d layers) on %s in %s",
        source,
        loaded.variant.upper(),
        loaded.config.mixer.kind,
        loaded.config.d_model,
        loaded.config.n_layer,
        torch_device,
        str(torch_dtype).removeprefix("torch."),
    )
    if loaded.default_window is not None:
        log.info("training length %s bases, from %s", f"{loaded.default_window:,}", loaded.window_source)
    if model is None:
        log.info(SHIPPED_MODEL_NOTE)
    return loaded
