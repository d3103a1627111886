"""Calibrated scores: what a raw score means next to the scores of random changes of the same kind.

`caduceus calibrate` scores every alternative base (and one deletion and one insertion) at random
sites of a genome and stores the scores by context (`io/backgrounds.py` writes and reads the file);
`score-variants --background` then gives each allele the percentile of its score among the
background variants of its context. The rules live here: the context of a change, the percentile,
the settings a background and a run must share, and the INFO declarations of the percentiles.

Contexts:
- SNVs: the trinucleotide and the substitution, read on the strand whose reference base is a
  pyrimidine (C or T), as mutational signatures write them: `A[C>T]G` (96 contexts). A change and
  its reverse complement are the same mutation, and Caduceus scores them alike (RC-conjoined). A
  neighbour that is not A, C, G or T (N, the contig's end) leaves the substitution alone: `C>T`,
  compared with every background SNV of that substitution, whatever its neighbours.
- Insertions and deletions: class and length, `ins:3`, `del:1`.
- MNVs, complex changes and ALT equal to REF have no context, so no percentile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from caduceus_cli.alleles import Change
from caduceus_cli.errors import InputError
from caduceus_cli.scoring.settings import Settings, percentile_name
from caduceus_cli.tokens import ACGT

if TYPE_CHECKING:
    from caduceus_cli.model.identity import ModelIdentity

log = logging.getLogger("caduceus")

_COMPLEMENT = str.maketrans("ACGT", "TGCA")
# Background variants per context from which percentiles are fine: steps of a point, and a median
# difference of about 3 points between two backgrounds (docs/commands/calibrate.md: How many sites).
FINE_CONTEXT = 100
_BASES = frozenset(ACGT)


def snv_context(left: str, ref: str, alt: str, right: str) -> str:
    """`A[C>T]G`: the change and its neighbours on the pyrimidine strand; `C>T` when a neighbour is not
    A, C, G or T."""
    left, ref, alt, right = left.upper(), ref.upper(), alt.upper(), right.upper()
    if ref in ("A", "G"):  # a purine: read the same mutation on the other strand
        left, ref, alt, right = (base.translate(_COMPLEMENT) for base in (right, ref, alt, left))
    change = f"{ref}>{alt}"
    return f"{left}[{change}]{right}" if left in _BASES and right in _BASES else change


def variant_context(change: Change, fetch: Callable[[int, int], str]) -> str | None:
    """The context a change is compared in, or None when it has none (MNV, complex, none).

    `fetch(start, end)` reads the reference around a SNV (N outside the contig)."""
    if change.kind == "snv":
        around = fetch(change.pos0 - 1, change.pos0 + 2)
        return snv_context(around[0], change.ref, change.alt, around[2])
    if change.kind in ("ins", "del"):
        return f"{change.kind}:{len(change.alt or change.ref)}"
    return None


def substitution_of(context: str) -> str | None:
    """`C>T` of the SNV context `A[C>T]G` (the pooled group it also belongs to); None for others."""
    return context[2:5] if context[1:2] == "[" else None


def percentile(sorted_values: np.ndarray, value: float) -> float:
    """The mid-rank percentile of `value` among `sorted_values` (float32, ascending):
    100 * (count below + half the count equal) / n, compared at float32, the precision scores are
    written at. The background's own values, all distinct, get (i + 0.5) / n * 100: evenly spread."""
    x = np.float32(value)
    below = int(np.searchsorted(sorted_values, x, "left"))
    equal = int(np.searchsorted(sorted_values, x, "right")) - below
    return 100.0 * (below + 0.5 * equal) / len(sorted_values)


@dataclass
class Background:
    """The scores of a background's variants by context, and the header that says how they were made.

    `distributions[score][context]` is a sorted float32 array; a SNV's value is under its trinucleotide
    context and under its substitution alone (`substitution_of`)."""

    path: str
    meta: dict[str, str]
    distributions: dict[str, dict[str, np.ndarray]]
    variants: int

    @classmethod
    def from_rows(
        cls, path: str, meta: dict[str, str], contexts: Sequence[str], values: Mapping[str, np.ndarray]
    ) -> Background:
        """From one context per variant and each score's values (NaN where a score does not apply)."""
        names, codes = np.unique(np.asarray(contexts, dtype=str), return_inverse=True)
        groups: dict[str, list[int]] = {}  # context -> the codes of the row contexts it holds
        for code, context in enumerate(names.tolist()):
            for key in (context, substitution_of(context)):
                if key is not None:
                    groups.setdefault(key, []).append(code)
        distributions: dict[str, dict[str, np.ndarray]] = {}
        for score, column in values.items():
            column = np.asarray(column, dtype=np.float32)
            scored = ~np.isnan(column)
            chosen = {key: column[scored & np.isin(codes, members)] for key, members in groups.items()}
            distributions[score] = {key: np.sort(part) for key, part in chosen.items() if len(part)}
        return cls(path, meta, distributions, len(contexts))

    @property
    def scores(self) -> tuple[str, ...]:
        return tuple(self.distributions)

    def context_size(self) -> int:
        """The median number of background variants in a context (trinucleotide SNV contexts and indel
        lengths; the pooled substitutions aside): a percentile there moves in steps of 100 / that."""
        by_context = next(iter(self.distributions.values()), {})
        sizes = [len(values) for context, values in by_context.items() if "[" in context or ":" in context]
        return int(np.median(sizes)) if sizes else 0

    def warn_if_coarse(self) -> None:
        """A log warning when the background is too small for percentiles finer than a few points."""
        size = self.context_size()
        if size < FINE_CONTEXT:
            log.warning(
                "%s: %s per context (median), so percentiles come in steps of %.0f points or more and move by "
                "several points between backgrounds of this size; calibrate with more sites (-n 20000 or more, "
                "docs/commands/calibrate.md: How many sites)",
                self.path, f"{size:,} variant" + ("" if size == 1 else "s"), 100 / max(size, 1),
            )  # fmt: skip

    def percentiles(self, context: str | None, values: Mapping[str, float]) -> dict[str, float]:
        """The percentile (`percentile_name` keys) of each of an allele's `values` the background has
        scores of, among those of `context`; none for a context the background does not have."""
        out = {}
        for score, by_context in self.distributions.items():
            value, background = values.get(score), by_context.get(context) if context is not None else None
            if value is not None and background is not None:
                out[percentile_name(score)] = percentile(background, value)
        return out

    def check_matches(self, expected: Mapping[str, str], scores: Sequence[str]) -> None:
        """An InputError (one line) unless the background was made by the model and settings of this run
        (`run_identity`) and has every score asked for. Settings only a score's computation reads (a
        flank) are compared when that score is asked for."""
        for score in scores:
            if score not in self.distributions:
                raise InputError(
                    f"{self.path}: has no {score} scores (it has {', '.join(self.scores)}); "
                    f"calibrate with -s {score} or leave -s {score} out"
                )
        compared = [*_SHARED, *(key for score in scores for key in _READ_BY.get(score, ()))]
        for key in dict.fromkeys(compared):
            theirs, ours = self.meta.get(key), expected[key]
            if theirs != ours:
                raise InputError(
                    f"{self.path}: made with {_what(key, theirs, self.meta)}, but this run has "
                    f"{_what(key, ours, expected)}; calibrate with this run's model and settings"
                )
        if self.meta.get("dtype") != expected["dtype"]:
            log.warning(
                "%s: made in %s, this run scores in %s; scores differ slightly between dtypes",
                self.path,
                self.meta.get("dtype"),
                expected["dtype"],
            )


# What a background and a run must share: the model's weights and strand handling and the window; a
# score's own settings when it is asked for (indel llr: llr_flank; embedding distances: emb_flank).
_SHARED = ("model_sha256", "rc", "window", "variant_index")
_READ_BY = {"llr": ("llr_flank",), "emb-cos": ("emb_flank",), "emb-l2": ("emb_flank",)}
_NAMES = {
    "model_sha256": "model",
    "rc": "RC handling",
    "window": "window",
    "variant_index": "variant index",
    "llr_flank": "llr flank",
    "emb_flank": "--emb-flank",
}


def _what(key: str, value: str | None, meta: Mapping[str, str]) -> str:
    if key == "model_sha256":
        return f"model {meta.get('model_source')} (sha256 {str(value)[:12]})"
    return f"{_NAMES[key]} {value}"


def run_identity(model: ModelIdentity, settings: Settings) -> dict[str, str]:
    """The model and settings that make a score what it is, as the background's header records them."""
    return {
        **model.fields(),
        "dtype": model.dtype,
        "rc": model.rc,
        "window": str(settings.window),
        "variant_index": str(settings.centre),
        "llr_flank": str(settings.llr_flank),
        "emb_flank": str(settings.flank),
    }


CONTEXT_RULE = (
    "SNVs by trinucleotide and substitution on the pyrimidine strand (A[C>T]G), by substitution alone "
    "where a neighbour is N; insertions and deletions by length"
)
