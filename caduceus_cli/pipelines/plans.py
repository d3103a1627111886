"""Variants into windows through the engine: the machinery `score-variants`, `calibrate` and `ism` share.

`scored_alleles` says what each ALT of a record is scored as; a `ScorePlan` (scoring.py) lists the
windows a group of changes needs; `PlanRunner` builds each window from the reference as the engine
asks for it and hands each output back to the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from caduceus_cli.alleles import Change, classify_alleles, placements
from caduceus_cli.engine import Engine, Window
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.scoring import ScorePlan, Settings, fits_window


class PlanRunner:
    """Runs the windows of `ScorePlan`s through the engine and hands each output back to its plan."""

    def __init__(self, engine: Engine, fasta: Fasta):
        self.engine, self.fasta = engine, fasta
        self._cached_span: tuple[str, int, int] | None = None
        self._cached_ids = np.empty(0, dtype=np.int64)

    def run(self, plan: ScorePlan, on_window: Callable[[], None] | None = None) -> None:
        """Run every window of `plan`; `on_window` is called after each (a progress bar)."""
        for jobs, output in ((plan.logit_jobs, "logits"), (plan.embed_jobs, "embed")):
            if jobs:
                for key, rows in self.engine.map(self._windows(plan, jobs), output=output, rc="auto"):
                    plan.keep(key, rows)
                    if on_window is not None:
                        on_window()

    def _windows(self, plan: ScorePlan, jobs: Iterable[tuple]) -> Iterator[Window]:
        """Windows built as the engine asks for them (in its read-ahead thread), sharing reference reads."""
        for key in jobs:
            ids, rows = plan.window_for(key, self._reference_ids(plan.window_span(key)))
            yield Window(ids=ids, key=key, rows=rows)

    def _reference_ids(self, span: tuple[str, int, int]) -> np.ndarray:
        # A position's masked, reference and alternative windows come one after another: read once.
        if span != self._cached_span:
            contig, start, end = span
            sequence = self.fasta.fetch(contig, start, end)
            where = f"{self.fasta.path}:{contig}:{start + 1}-{end}"
            self._cached_ids = self.engine.model.tokenizer.encode(sequence, where=where)
            self._cached_span = span
        return self._cached_ids


def scored_alleles(
    fasta: Fasta, contig: str | None, start: int, ref: str, alts: Sequence[str], settings: Settings
) -> list[tuple[Change, ...] | str]:
    """What each ALT of a record at 0-based `start` on FASTA contig `contig` (None: not in the FASTA) is
    scored as: the places its change is scored at (`alleles.placements`), or the flag saying why it is
    not (`alleles.FLAGS`; `too_long` when it does not fit the window)."""
    fasta_ref = None if contig is None else fasta.fetch(contig, start, start + len(ref))
    length = 0 if contig is None else fasta.contigs[contig]
    return [
        _placed(allele, contig, fasta, settings) if isinstance(allele, Change) else allele
        for allele in classify_alleles(ref, tuple(alts), fasta_ref, start, length)
    ]


def _placed(change: Change, contig: str, fasta: Fasta, settings: Settings) -> tuple[Change, ...] | str:
    if not fits_window(change, settings):
        return "too_long"
    return placements(change, lambda start, end: fasta.fetch(contig, start, end), fasta.contigs[contig])
