"""`ism`: in-silico saturation mutagenesis of a region, every base changed to each of the other three.

`IsmJob` is one run: the region, window and mode, and the outputs it owns (the table, a file or
stdout, and an optional figure, each written under a temporary name and renamed when complete).

The logits come from the windows `score-variants` would run for those SNVs (`ScorePlan`, run by
`PlanRunner`), so each LLR of the table equals that SNV's `score-variants` score at the same window:

- `unmasked` (default): the reference's grid tiles (`unmasked_tile`), one tile per W/2 bases
  scores all 3 changes of every base in it: `llr-unmasked`.
- `masked`: one window per position with the base replaced by [MASK]: `llr`. W times the cost of
  `unmasked` per base (two passes each for a PH model), so meant for short regions.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caduceus_cli.alleles import Change
from caduceus_cli.engine import Engine
from caduceus_cli.errors import InputError
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.outputs import STDOUT, claimed, write_errors
from caduceus_cli.io.regions import Region
from caduceus_cli.io.tables import write_rows, write_table
from caduceus_cli.plots import plot_ism
from caduceus_cli.scoring.plan import PlanRunner, ScorePlan
from caduceus_cli.scoring.scores import substitution_llrs
from caduceus_cli.scoring.settings import Settings
from caduceus_cli.terminal import counted, format_rate, progress_bar
from caduceus_cli.tokens import ACGT

log = logging.getLogger("caduceus")

ISM_MODES = ("unmasked", "masked")
_SCORE_OF_MODE = {"unmasked": "llr-unmasked", "masked": "llr"}
ISM_COLUMNS = ("chrom", "pos", "ref", "alt", "llr", "logit_ref", "logit_alt")
# Beyond ~10 kbp the ISM figure is no longer readable, and `--mode masked` runs one model window per base.
ISM_MAX_BASES = 10_000


@dataclass(frozen=True)
class IsmTable:
    """Saturation mutagenesis of the bases [start, start + L) of `chrom`: every base changed to the other 3.

    Row i of `logits` and `llrs` belongs to position start + i, columns are A, C, G, T; `llrs` is
    `substitution_llrs` (NaN at the reference cell and at N). `rows` gives the table of ISM_COLUMNS.
    """

    chrom: str
    start: int
    reference: str
    logits: np.ndarray
    llrs: np.ndarray

    @property
    def end(self) -> int:
        return self.start + len(self.reference)

    def rows(self) -> Iterator[tuple[str, int, str, str, float, float, float]]:
        """One row per SNV: (chrom, pos 1-based, ref, alt, llr, logit_ref, logit_alt); positions in order,
        alternatives in A, C, G, T order; a position whose reference is not A, C, G or T has no rows."""
        for index, ref in enumerate(self.reference):
            if ref not in ACGT:
                continue
            pos, logits, llrs = self.start + index + 1, self.logits[index].tolist(), self.llrs[index].tolist()
            for column, alt in enumerate(ACGT):
                if alt != ref:
                    yield self.chrom, pos, ref, alt, llrs[column], logits[ACGT.index(ref)], logits[column]


def ism_table(logits: np.ndarray, columns: np.ndarray, chrom: str, start: int) -> IsmTable:
    """The ISM table of the region starting at 0-based `start` whose reference bases are `columns` (L,).

    Row i of `logits` (L, 4: A, C, G, T) is what the model says at position start + i: the rows of
    one conjoined pass over the reference give the unmasked table (every LLR equal to `llr-unmasked`);
    the centre rows of one masked window per position give the exact masked one (equal to `llr`).
    """
    reference = "".join(ACGT[column] if column >= 0 else "N" for column in columns)
    return IsmTable(chrom, start, reference, logits, substitution_llrs(logits, columns))


def check_ism_region(chrom: str, start: int, end: int) -> None:
    """An ISM region [start, end) must hold at least one base and at most ISM_MAX_BASES."""
    where = f"{chrom}:{start + 1}-{end}"
    if end <= start:
        raise InputError(f"{where}: the region is empty")
    if end - start > ISM_MAX_BASES:
        raise InputError(f"{where}: {end - start:,} bp; ism takes regions of at most {ISM_MAX_BASES:,} bp")


@dataclass(frozen=True, kw_only=True)
class IsmJob:
    """One `ism` run: `region` (forward strand, at most ISM_MAX_BASES) scored with `window`-bp windows in
    `mode`, the masked base at `variant_index` (None: window // 2); the table to `table` (None: stdout)
    and, with `plot` (.png or .svg), the figure."""

    region: Region
    window: int
    mode: str = "unmasked"
    variant_index: int | None = None
    table: Path | None = None
    plot: Path | None = None

    def run(self, engine: Engine, reference: Fasta, quiet: bool = True) -> IsmTable:
        """Score the region, write the figure and the table (claimed, under temporary names), return the table."""
        outputs = [path for path in (self.table, self.plot) if path is not None]
        with claimed(*outputs):
            table = saturation_mutagenesis(
                engine, reference, self.region, window=self.window, mode=self.mode, quiet=quiet,
                variant_index=self.variant_index,
            )  # fmt: skip
            self._write(table)
        log.info("wrote %s", " and ".join(str(p) for p in (self.table or "stdout", self.plot) if p is not None))
        return table

    def _write(self, table: IsmTable) -> None:
        """The figure, then the table; a failed table takes the figure with it."""
        if self.plot is not None:
            plot_ism(table, self.plot)
        try:
            if self.table is None:
                with write_errors(STDOUT):
                    write_rows(sys.stdout, ISM_COLUMNS, table.rows())
                    sys.stdout.flush()
            else:
                write_table(self.table, ISM_COLUMNS, table.rows())
        except BaseException:
            if self.plot is not None:
                self.plot.unlink(missing_ok=True)
            raise


def saturation_mutagenesis(
    engine: Engine,
    reference: Fasta,
    region: Region,
    *,
    window: int,
    mode: str = "unmasked",
    quiet: bool = True,
    variant_index: int | None = None,
) -> IsmTable:
    """The ISM table of `region` (forward strand, at most ISM_MAX_BASES) scored with `window`-bp windows,
    the masked base at `variant_index` of each (None: window // 2) in `masked` mode.

    A progress bar of model windows shows on a terminal unless `quiet`."""
    check_ism_region(region.chrom, region.start, region.end)
    positions = range(region.start, region.end)
    tokenizer = engine.model.tokenizer
    settings = Settings(
        scores=(_SCORE_OF_MODE[mode],), probs=False, window=window, flank=0, on_ref_mismatch="flag",
        variant_index=variant_index,
    )  # fmt: skip
    plan = ScorePlan(settings, tokenizer)
    for p0 in positions:
        plan.add(region.chrom, Change(p0, "C", "A"))  # every SNV at p0 shares its windows: any bases do
    started = time.perf_counter()
    with progress_bar(quiet, "windows") as progress:
        task = progress.add_task(f"ism {mode}", total=len(plan.logit_jobs), rate="-")
        done = 0

        def advance() -> None:
            nonlocal done
            done += 1
            progress.update(task, advance=1, rate=format_rate(done, time.perf_counter() - started))

        PlanRunner(engine, reference).run(plan, advance)
    seconds = time.perf_counter() - started
    log.info(
        "%s ISM of %s in %.1f s (%s positions/s)",
        mode, counted(len(positions), "position"), seconds, format_rate(len(positions), seconds),
    )  # fmt: skip
    logits = np.stack([plan.logit_row(region.chrom, p0) for p0 in positions])
    sequence = reference.fetch(region.chrom, region.start, region.end)
    where = f"{reference.path}: {region.chrom}:{region.start + 1}-{region.end}"
    return ism_table(logits, tokenizer.columns(tokenizer.encode(sequence, where=where)), region.chrom, region.start)
