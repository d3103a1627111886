"""The model windows a group of changes needs, each listed once (typed window jobs), the scores read
back from their outputs (`ScorePlan`), and the runner that builds each window and runs it (`PlanRunner`).

Every change's windows start at the same reference base (`geometry.window_start`), with the change
at `geometry.change_row`:

- Substitutions (SNV, MNV): a `MaskedWindow` of the reference with every changed base masked, shared
  by all ALTs that change the same bases (all three ALTs of a SNV); `llr` is the sum over the changed
  bases of logit(ALT) - logit(REF). For a SNV that is the masked log-likelihood ratio.
- Insertions, deletions, complex changes: two `HaplotypeWindow`s, the REF haplotype with its REF bases
  masked and the ALT haplotype with its ALT bases masked, each reduced to one number (`haplotype_side`).
- `llr-unmasked` (substitutions): `GridTile`s of the reference, one per central half (`unmasked_tile`).
- `emb-cos`/`emb-l2`: `EmbeddingWindow`s, the unmasked REF and ALT windows averaged over `aligned_rows`
  within the flank; the REF one is shared by every change with the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from caduceus_cli.alleles import Change
from caduceus_cli.engine import Engine, Window
from caduceus_cli.scoring.geometry import aligned_rows, change_row, unmasked_tile, window_start
from caduceus_cli.scoring.scores import (
    COLUMN,
    cosine_distance,
    haplotype_side,
    l2_distance,
    log_likelihood_ratio,
    nucleotide_probs,
)
from caduceus_cli.scoring.settings import Settings
from caduceus_cli.tokens import CADUCEUS, Tokenizer

if TYPE_CHECKING:
    from caduceus_cli.io.fasta import Fasta

Side = Literal["ref", "alt"]


@dataclass(frozen=True)
class MaskedWindow:
    """The reference from `start` with the bases at `rows` masked: scores a substitution's changed bases."""

    contig: str
    start: int
    rows: tuple[int, ...]


@dataclass(frozen=True)
class GridTile:
    """The unmasked reference tile of the grid (`unmasked_tile`) starting at `start`."""

    contig: str
    start: int


@dataclass(frozen=True)
class HaplotypeWindow:
    """The `side` haplotype of an insertion, deletion or complex change, with that allele masked."""

    side: Side
    contig: str
    start: int
    change: Change


@dataclass(frozen=True)
class EmbeddingWindow:
    """The unmasked `side` window of a change, its embeddings averaged over `rows`. The REF window has no
    `change`: every change with the same rows shares it."""

    side: Side
    contig: str
    start: int
    rows: tuple[int, ...]
    change: Change | None = None


WindowJob = MaskedWindow | GridTile | HaplotypeWindow | EmbeddingWindow


def with_base(ids: np.ndarray, index: int | np.ndarray, token: int) -> np.ndarray:
    """A copy of `ids` with the position(s) `index` replaced by `token` (an alternative base or [MASK])."""
    out = ids.copy()
    out[index] = token
    return out


class ScorePlan:
    """The windows a group of changes needs, each listed once, and the scores read back from their outputs.

    `add` every change first; then run `logit_jobs` through the model's conjoined logits and
    `embed_jobs` through its conjoined embeddings (`window_for` gives ids and rows to keep), pass each
    output to `keep`, and read the scores with `allele_scores`. `tokenizer` gives the ids of [MASK] and
    the bases.
    """

    def __init__(self, settings: Settings, tokenizer: Tokenizer = CADUCEUS):
        self.settings, self.tokenizer = settings, tokenizer
        self.scores, self.window = settings.scores, settings.window
        self.logit_jobs: dict[MaskedWindow | GridTile | HaplotypeWindow, None] = {}
        self.embed_jobs: dict[EmbeddingWindow, None] = {}
        self._outputs: dict[WindowJob, object] = {}
        self._bases: dict[HaplotypeWindow, np.ndarray] = {}  # base columns of haplotype windows, unmasked
        self._tile_rows: dict[GridTile, set[int]] = {}  # the rows of a tile that score variants

    def add(self, contig: str, change: Change) -> None:
        """List the windows `change` (which `fits_window`) needs."""
        if change.kind == "none":
            return
        if change.is_substitution:
            if self.settings.masked:
                self.logit_jobs[self._masked_window(contig, change)] = None
            if "llr-unmasked" in self.scores:
                for offset in change.changed_offsets():
                    start, index = unmasked_tile(change.pos0 + offset, self.window)
                    tile = GridTile(contig, start)
                    self.logit_jobs[tile] = None
                    self._tile_rows.setdefault(tile, set()).add(index)
        elif "llr" in self.scores:
            for job in self._haplotype_windows(contig, change):
                self.logit_jobs[job] = None
        if self.settings.embeddings:
            self.embed_jobs[self._embedding_window(contig, change, "ref")] = None
            self.embed_jobs[self._embedding_window(contig, change, "alt")] = None

    def _masked_window(self, contig: str, change: Change) -> MaskedWindow:
        row = change_row(change, self.settings)
        return MaskedWindow(contig, change.pos0 - row, tuple(row + offset for offset in change.changed_offsets()))

    def _haplotype_windows(self, contig: str, change: Change) -> tuple[HaplotypeWindow, HaplotypeWindow]:
        start = window_start(change, self.settings)
        return HaplotypeWindow("ref", contig, start, change), HaplotypeWindow("alt", contig, start, change)

    def _embedding_window(self, contig: str, change: Change, side: Side) -> EmbeddingWindow:
        rows = tuple(aligned_rows(change, side, self.settings, self.settings.flank).tolist())
        start = window_start(change, self.settings)
        return EmbeddingWindow(side, contig, start, rows, None if side == "ref" else change)

    def window_span(self, job: WindowJob) -> tuple[str, int, int]:
        """(contig, start, end) of the reference bases a job's window is made from: a deletion's ALT window
        reads as many more as it deletes."""
        extra = 0
        if isinstance(job, HaplotypeWindow | EmbeddingWindow) and job.side == "alt":
            extra = max(len(job.change.ref) - len(job.change.alt), 0)
        return job.contig, job.start, job.start + self.window + extra

    def window_for(self, job: WindowJob, reference_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Token ids and output rows of a job (None: all), given the reference ids of its `window_span`. A
        tile's rows are those of its variants only: kept for a whole chunk, its other rows would be memory
        per record (W/2 rows for a lone variant)."""
        mask = self.tokenizer.mask_id
        match job:
            case GridTile():
                return reference_ids, np.array(sorted(self._tile_rows[job]))
            case MaskedWindow():
                rows = np.array(job.rows)
                return with_base(reference_ids, rows, mask), rows
            case EmbeddingWindow(side="ref"):
                return reference_ids, np.array(job.rows)
            case EmbeddingWindow():
                return self._alt_haplotype(job.change, reference_ids), np.array(job.rows)
            case HaplotypeWindow():  # the REF or ALT allele masked at the change's row
                change, row = job.change, change_row(job.change, self.settings)
                if job.side == "ref":
                    ids, length = reference_ids, len(change.ref)
                else:
                    ids, length = self._alt_haplotype(change, reference_ids), len(change.alt)
                self._bases[job] = self.tokenizer.columns(ids)  # read back by `keep`, on the calling thread
                return with_base(ids, np.arange(row, row + length), mask), None

    def _alt_haplotype(self, change: Change, reference_ids: np.ndarray) -> np.ndarray:
        """The window with `change` spliced in at its row: the ALT bases, then the reference after REF."""
        row = change_row(change, self.settings)
        alt_ids = self.tokenizer.encode(change.alt)
        return np.concatenate([reference_ids[:row], alt_ids, reference_ids[row + len(change.ref) :]])[: self.window]

    def keep(self, job: WindowJob, output: np.ndarray) -> None:
        """Store what the scores need from one output (of `window_for`'s rows): logits rows as they are,
        a tile's by their row in the tile, embeddings as their mean, a haplotype as its one number
        (memory does not grow with W)."""
        match job:
            case EmbeddingWindow():
                self._outputs[job] = output.mean(axis=0, dtype=np.float64)
            case HaplotypeWindow():
                self._outputs[job] = haplotype_side(output, self._bases.pop(job), job.change, job.side, self.settings)
            case GridTile():
                self._outputs[job] = dict(zip(sorted(self._tile_rows[job]), output, strict=True))
            case MaskedWindow():
                self._outputs[job] = output

    def allele_scores(self, contig: str, places: Sequence[Change]) -> dict[str, float]:
        """The requested scores (names of SCORES, plus PROBS with `probs`) of one ALT, and LOGITS for a SNV
        when a logits row gives them (see `logit_row`): the mean over the places its change is scored at
        (`outcomes.Placed`). Scores that do not apply to the class (`llr-unmasked` and PROBS of an indel)
        are absent; a change of nothing scores 0."""
        each = [self._change_scores(contig, change) for change in places]
        return {name: float(np.mean([values[name] for values in each])) if len(each) > 1 else value
                for name, value in each[0].items()}  # fmt: skip

    def _change_scores(self, contig: str, change: Change) -> dict[str, float]:
        if change.kind == "none":
            return {name: 0.0 for name in self.scores}
        values: dict[str, float] = {}
        if change.is_substitution:
            values |= self._substitution_scores(contig, change)
        elif "llr" in self.scores:
            ref, alt = self._haplotype_windows(contig, change)
            values["llr"] = self._outputs[alt] - self._outputs[ref]
        if self.settings.embeddings:
            ref_mean = self._outputs[self._embedding_window(contig, change, "ref")]
            alt_mean = self._outputs[self._embedding_window(contig, change, "alt")]
            if "emb-cos" in self.scores:
                values["emb-cos"] = cosine_distance(ref_mean, alt_mean)
            if "emb-l2" in self.scores:
                values["emb-l2"] = l2_distance(ref_mean, alt_mean)
        return values

    def _substitution_scores(self, contig: str, change: Change) -> dict[str, float]:
        """Masked scores of the changed bases, all masked in one window: LLRs summed, probabilities
        multiplied; `llr-unmasked` from each base's grid tile; a SNV's logits for the table."""
        offsets = change.changed_offsets()
        pairs = [(change.ref[i], change.alt[i]) for i in offsets]
        values: dict[str, float] = {}
        if self.settings.masked:
            rows = self._outputs[self._masked_window(contig, change)]
            if "llr" in self.scores:
                values["llr"] = sum(log_likelihood_ratio(row, r, a) for row, (r, a) in zip(rows, pairs, strict=True))
            if self.settings.probs:
                probs = [nucleotide_probs(row) for row in rows]
                values["p-ref"] = math.prod(p[r] for p, (r, _) in zip(probs, pairs, strict=True))
                values["p-alt"] = math.prod(p[a] for p, (_, a) in zip(probs, pairs, strict=True))
        if "llr-unmasked" in self.scores:
            values["llr-unmasked"] = sum(
                log_likelihood_ratio(self._tile_row(contig, change.pos0 + i), r, a)
                for i, (r, a) in zip(offsets, pairs, strict=True)
            )
        logits = self.logit_row(contig, change.pos0) if change.kind == "snv" else None
        if logits is not None:
            values["logit-ref"] = float(logits[COLUMN[change.ref]])
            values["logit-alt"] = float(logits[COLUMN[change.alt]])
        return values

    def logit_row(self, contig: str, p0: int) -> np.ndarray | None:
        """The A, C, G, T logits that score SNVs at p0: the masked pass's when it runs (`llr`, `probs`),
        else the unmasked tile's (`llr-unmasked`); None when only embedding scores are asked for."""
        if self.settings.masked:
            centre = self.settings.centre
            return self._outputs[MaskedWindow(contig, p0 - centre, (centre,))][0]
        if "llr-unmasked" in self.scores:
            return self._tile_row(contig, p0)
        return None

    def _tile_row(self, contig: str, p0: int) -> np.ndarray:
        start, index = unmasked_tile(p0, self.window)
        return self._outputs[GridTile(contig, start)][index]


class PlanRunner:
    """Runs the windows of `ScorePlan`s through the engine and hands each output back to its plan."""

    def __init__(self, engine: Engine, fasta: Fasta):
        self.engine, self.fasta = engine, fasta
        self._cached_span: tuple[str, int, int] | None = None
        self._cached_ids = np.empty(0, dtype=np.int64)

    def run(self, plan: ScorePlan, on_window: Callable[[], None] | None = None) -> None:
        """Run every window of `plan`; `on_window` is called after each (a progress bar)."""
        for jobs, head in ((plan.logit_jobs, "logits"), (plan.embed_jobs, "embed")):
            if jobs:
                for job, rows in self.engine.map(self._windows(plan, jobs), head=head, rc="auto"):
                    plan.keep(job, rows)
                    if on_window is not None:
                        on_window()

    def _windows(self, plan: ScorePlan, jobs: Iterable[WindowJob]) -> Iterator[Window]:
        """Windows built as the engine asks for them (in its read-ahead thread), sharing reference reads."""
        for job in jobs:
            ids, rows = plan.window_for(job, self._reference_ids(plan.window_span(job)))
            yield Window(ids=ids, key=job, rows=rows)

    def _reference_ids(self, span: tuple[str, int, int]) -> np.ndarray:
        # A position's masked, reference and alternative windows come one after another: read once.
        if span != self._cached_span:
            contig, start, end = span
            sequence = self.fasta.fetch(contig, start, end)
            where = f"{self.fasta.path}:{contig}:{start + 1}-{end}"
            self._cached_ids = self.engine.model.tokenizer.encode(sequence, where=where)
            self._cached_span = span
        return self._cached_ids
