"""What one job of the command line asks a cluster scheduler for: memory by model size and window.

Peak memory is set by the model and the tokens of one batch, never by the size of the input
(docs/scaling.md, Memory): about 650 MiB of libraries and fixed buffers, the checkpoint's weights,
and the activations of one batch, per token per model dimension 0.14 KiB with Mamba-1 mixers and 0.18
KiB with Mamba-2 mixers (PlantCAD2). On the CPU a batch is
8,192 // W windows (at least one); a `--batch-size` sets it. The request adds 25% for other load
and library versions, as the manual advises. tests/test_resources.py checks the estimate against
every measured row of the manual's table. A workflow reads it on the submit host, before any job
runs: only a checkpoint that is not a published one of known size needs the model loader (and torch).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from caduceus_cli.model.zoo import published
from caduceus_cli.scoring.settings import MAX_DEFAULT_WINDOW
from caduceus_cli.windows import FALLBACK_WINDOW

BASE_MIB = 650
KIB_PER_TOKEN_PER_DIM = {"Mamba1": 0.14, "Mamba2": 0.18}
CPU_BATCH_TOKENS = 8192
MARGIN = 1.25


@dataclass(frozen=True)
class ModelSize:
    """What sets a model's memory: its width, its weights in bytes (float32), its training length, its mixer."""

    d_model: int
    weights_bytes: int
    training_length: int | None
    mixer: str = "Mamba1"


# The shipped model (weights/caduceus-ph-tair10; tests/test_resources.py checks these against its files).
SHIPPED = ModelSize(d_model=64, weights_bytes=664_912, training_length=1024)


def model_size(source: str | None) -> ModelSize:
    """The size of the checkpoint `--model source` names: the shipped model for None, a published one of
    known size by hub id or name, or else what its files say (a folder, or a hub id through the cache)."""
    if not source:
        return SHIPPED
    known = published(source)
    if known is not None and known.parameters is not None:
        return ModelSize(known.d_model, 4 * known.parameters, known.training_length, known.mixer)
    from caduceus_cli.model.load import checkpoint_facts

    facts = checkpoint_facts(source)
    return ModelSize(
        facts.config.d_model, facts.weights.stat().st_size, facts.training_length, facts.config.mixer.kind
    )


def batch_tokens(window: int, batch_size: int | None = None) -> int:
    """Tokens in one batch on the CPU: 8,192 // W windows of W (at least one), or `batch_size` windows."""
    windows = batch_size if batch_size else max(1, CPU_BATCH_TOKENS // window)
    return windows * window


def job_memory_mb(size: ModelSize, window: int, batch_size: int | None = None) -> int:
    """Memory to ask for, in MB as SLURM's --mem reads it (MiB), for a job of a model of `size` at `window`."""
    activations = batch_tokens(window, batch_size) * size.d_model * KIB_PER_TOKEN_PER_DIM[size.mixer] / 1024
    return math.ceil((BASE_MIB + size.weights_bytes / 2**20 + activations) * MARGIN)


def option_value(options: str, *names: str) -> int | None:
    """The integer value of the option `names` (e.g. '--window', '-w') in a command's extra options, if given."""
    words = shlex.split(options)
    for index, word in enumerate(words):
        for name in names:
            if word == name and index + 1 < len(words):
                return int(words[index + 1])
            if word.startswith(f"{name}="):
                return int(word.split("=", 1)[1])
    return None


def embed_memory_mb(model: str | None, options: str = "") -> int:
    """`job_memory_mb` of `caduceus embed --model model OPTIONS`: its window defaults to the training length."""
    size = model_size(model)
    window = option_value(options, "--window") or size.training_length or FALLBACK_WINDOW
    return job_memory_mb(size, window, option_value(options, "--batch-size"))


def score_memory_mb(model: str | None, options: str = "") -> int:
    """`job_memory_mb` of `caduceus score-variants --model model OPTIONS`: its window defaults to the
    training length, at most 2,048."""
    size = model_size(model)
    default = min(size.training_length or MAX_DEFAULT_WINDOW, MAX_DEFAULT_WINDOW)
    window = option_value(options, "--window", "-w") or default
    return job_memory_mb(size, window, option_value(options, "--batch-size"))
