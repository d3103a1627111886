"""Running streams of token windows through the model: batching, read-ahead, OOM back-off.

Every command hands the engine an iterator of `Window`s (reading the FASTA and tokenizing happen
inside that iterator) and gets `(key, array)` pairs back in the same order. A reader thread
pulls windows ahead of the model and groups consecutive windows of equal length into batches:
windows are never padded, since padding changes every output of a bidirectional model.

Memory is bounded by the model, the batch and the window, never by the number of windows: every
array handed back is a copy that owns its memory (a view would keep the whole batch's output
alive for as long as the caller keeps one row of it), and on the CPU the model runs on a thread
of its own, so its large short-lived activations and the caller's long-lived rows come from
different glibc arenas and per-thread caches (rows allocated between batches on the model's
thread split the activations' free blocks, and the heap grows batch after batch;
benchmarks/memory.py measures both).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch

from caduceus_cli.errors import OutOfMemoryError
from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.stages import DedicatedThread, read_ahead

log = logging.getLogger("caduceus")

# What `Engine.map` returns per window: the model's embeddings, or its A, C, G, T logits
Head = Literal["embed", "logits"]
HEADS: tuple[Head, ...] = get_args(Head)
# Bytes of activations per token per unit of d_inner at float32, measured peak of the unfused
# PyTorch path with a margin; the GPU budget is a fraction of free memory.
_BYTES_PER_TOKEN_PER_CHANNEL = 64
_GPU_MEMORY_FRACTION = 0.6
# On the CPU, batches of 4-8 windows of 1,024 ran fastest at 2 threads (benchmarks/cpu_throughput.py:
# up to 1.9x batch 1 for the published size, 1.4x for the shipped model), while 16 ran slower (its
# activations no longer fit in cache) and memory grows with the batch: about this many tokens.
_CPU_TOKENS_PER_BATCH = 8192
_READ_AHEAD_BATCHES = 4


@dataclass
class Window:
    ids: np.ndarray  # (L,) int64 token ids
    key: Any  # the caller's tag, handed back with the result
    rows: slice | np.ndarray | None = None  # positions of the output to return; None = all


def default_batch_size(model: CaduceusForMaskedLM, length: int, rc: str = "auto") -> int:
    """Windows per batch: on CUDA as many as fit in a fraction of free memory; on the CPU about
    _CPU_TOKENS_PER_BATCH tokens."""
    device = next(model.parameters()).device
    if device.type != "cuda":
        return max(1, _CPU_TOKENS_PER_BATCH // max(length, 1))
    free, _ = torch.cuda.mem_get_info(device)
    budget = free * _GPU_MEMORY_FRACTION
    element = max(torch.finfo(next(model.parameters()).dtype).bits // 8, 4)
    per_window = length * model.config.mixer.d_inner * _BYTES_PER_TOKEN_PER_CHANNEL * element // 4 * model.strand_passes(rc)
    return max(1, int(budget // max(per_window, 1)))


class Engine:
    def __init__(self, model: CaduceusForMaskedLM, batch_size: int | None = None):
        self.model = model
        self.device = next(model.parameters()).device
        self.batch_size = batch_size
        # The CPU forward pass's thread (see the module's docstring); CUDA activations are not in host memory.
        self._model_thread = DedicatedThread("caduceus-model") if self.device.type == "cpu" else None

    def map(
        self, windows: Iterable[Window], head: Head, rc: str = "auto"
    ) -> Iterator[tuple[Any, np.ndarray]]:
        """Yield (key, float32 array) per window, in input order. head "embed": (rows, d) of
        `model.embed(ids, rc)`; "logits": (rows, 4) of `model.logits_conjoined(ids, rc)`, its A, C, G, T
        columns (`Tokenizer.nucleotide_logits`): the only ones any score reads, whatever the vocabulary.
        Each array owns its memory (no view of the batch), so keeping it keeps nothing else."""
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        for batch in read_ahead(self._group(windows, rc), _READ_AHEAD_BATCHES):
            yield from self._run_batch(batch, head, rc)

    def _group(self, windows: Iterable[Window], rc: str) -> Iterator[list[Window]]:
        batch: list[Window] = []
        limit = 0
        for window in windows:
            if batch and (len(window.ids) != len(batch[0].ids) or len(batch) >= limit):
                yield batch
                batch = []
            if not batch:
                limit = self.batch_size or default_batch_size(self.model, len(window.ids), rc)
            batch.append(window)
        if batch:
            yield batch

    # --- running -----------------------------------------------------------------------------
    def _run_batch(self, batch: list[Window], head: Head, rc: str) -> list[tuple[Any, np.ndarray]]:
        """Run one batch; on CUDA out-of-memory, halve it and retry (and keep the smaller size)."""
        try:
            return self._forward(batch, head, rc)
        except torch.cuda.OutOfMemoryError as err:
            torch.cuda.empty_cache()
            if len(batch) == 1:
                raise OutOfMemoryError(
                    f"out of GPU memory for one window of {len(batch[0].ids)} bases; use a smaller --window "
                    "or --dtype bfloat16"
                ) from err
            half = len(batch) // 2
            self.batch_size = half
            log.warning("CUDA out of memory at batch size %d; retrying at %d", len(batch), half)
            return self._run_batch(batch[:half], head, rc) + self._run_batch(batch[half:], head, rc)

    def _forward(self, batch: list[Window], head: Head, rc: str) -> list[tuple[Any, np.ndarray]]:
        ids = torch.from_numpy(np.stack([w.ids for w in batch]))
        if self.device.type == "cuda":
            ids = ids.pin_memory().to(self.device, non_blocking=True)
        run = self.model.embed if head == "embed" else self.model.logits_conjoined
        thread = self._model_thread
        values = thread.run(_infer, run, ids, rc) if thread is not None else _infer(run, ids, rc)
        with torch.inference_mode():
            selected = [values[i] if w.rows is None else values[i, w.rows] for i, w in enumerate(batch)]
            if head == "logits":
                selected = [self.model.tokenizer.nucleotide_logits(part) for part in selected]
            host = [_owned(part) for part in selected]
        return [(w.key, values_of_window) for w, values_of_window in zip(batch, host, strict=True)]


def _infer(run: Callable[..., torch.Tensor], ids: torch.Tensor, rc: str) -> torch.Tensor:
    with torch.inference_mode():  # a per-thread mode: entered on the thread that runs the model
        return run(ids, rc=rc)


def _owned(part: torch.Tensor) -> np.ndarray:
    """A float32 host copy of `part` in a numpy array of its own (base None), made in one copy from
    any device and dtype, on the calling thread."""
    out = np.empty(tuple(part.shape), dtype=np.float32)
    torch.from_numpy(out).copy_(part)
    return out
