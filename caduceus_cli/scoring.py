"""What a variant score is: window geometry and scores as functions of logits and embeddings.

Pure numpy, no files and no model: `score-variants` builds the windows described here, runs
them through the engine and hands the outputs to these functions. The rules of what is scored live
here too: the settings and their defaults (window, flank), which changes fit a window, and the INFO
keys with descriptions of how each number was computed (what each ALT changes: `alleles.py`).

Logits here are the model's A, C, G, T columns only (`Tokenizer.nucleotide_logits`, in that
order, whatever the checkpoint's vocabulary), and reference bases are columns 0-3 (-1 for N):
the scores do not depend on how a checkpoint numbers its tokens.

Windows (0-based, half-open, W even): a SNV at p0 is scored in the window `[p0 - c, p0 - c + W)`,
so the variant sits at index c (`--variant-index`, default W//2); a longer change is centred there
(`change_row`); bases outside the contig read as N. The unmasked LLR instead reads a fixed grid of
tiles (see `unmasked_tile`), so that one pass over the reference scores every variant in a tile's
central half, whatever the other records are: shards and a single run give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from caduceus_cli.alleles import CLASSES, FLAGS, Change
from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.tokens import ACGT, CADUCEUS, Tokenizer

COLUMN = {base: column for column, base in enumerate(ACGT)}  # a base's column among the nucleotide logits


def check_window(window: int) -> None:
    """W must be even (the variant at W//2 has W//2 bases on its left, W//2 - 1 on its right) and >= 2."""
    if window < 2 or window % 2:
        raise UsageError(f"--window {window}: must be an even number of bases, at least 2")


def check_variant_index(index: int, window: int) -> None:
    if not 0 <= index < window:
        raise UsageError(f"--variant-index {index}: must be a position of the {window} bp window (0 to {window - 1})")


def unmasked_tile(p0: int, window: int) -> tuple[int, int]:
    """(start, index of p0) of the grid tile that scores p0 without masking.

    Tiles are W long and start every H = W//2 bases at k*H - (W - H)//2 (k = 0, 1, ...), so their
    central halves [k*H, k*H + H) cover the contig once: every variant is read at least W//4
    bases from a tile edge, and all variants in one central half share a single pass.
    """
    half = window // 2
    start = (p0 // half) * half - tile_centre(window).start
    return start, p0 - start


def tile_centre(window: int) -> slice:
    """Rows of a tile whose positions it scores: its central half."""
    half = window // 2
    edge = (window - half) // 2
    return slice(edge, edge + half)


def with_base(ids: np.ndarray, index: int | np.ndarray, token: int) -> np.ndarray:
    """A copy of `ids` with the position(s) `index` replaced by `token` (an alternative base or [MASK])."""
    out = ids.copy()
    out[index] = token
    return out


def log_likelihood_ratio(logits: np.ndarray, ref: str, alt: str) -> float:
    """logit[alt] - logit[ref] of one position's A, C, G, T logits: log P(alt) - log P(ref) under any softmax."""
    return float(logits[COLUMN[alt]]) - float(logits[COLUMN[ref]])


def nucleotide_probs(logits: np.ndarray) -> dict[str, float]:
    """Softmax over one position's A, C, G, T logits (computed in float64)."""
    probs = np.exp(nucleotide_log_probs(logits[None])[0])
    return dict(zip(ACGT, probs.tolist(), strict=True))


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos(a, b) in float64; 0 for identical directions, up to 2 for opposite ones."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64) * np.linalg.norm(b64)
    if norms == 0.0:
        return 0.0 if not (a64.any() or b64.any()) else 1.0
    return float(1.0 - np.dot(a64, b64) / norms)


def l2_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


SCORES = ("llr", "llr-unmasked", "emb-cos", "emb-l2")
DEFAULT_SCORES = ("llr",)
PROBS = ("p-ref", "p-alt")
LOGITS = ("logit-ref", "logit-alt")  # the REF and ALT logits of the row that gave the LLR (tables only)
ON_REF_MISMATCH = ("flag", "skip", "error")  # what a record whose REF differs from the FASTA gets

JobKey = tuple  # (kind, contig, window start, ...): see ScorePlan.add


@dataclass(frozen=True)
class Settings:
    """What is computed: score names, --probs, window, flank (clamped to the window), --on-ref-mismatch,
    and --variant-index (None: W//2)."""

    scores: tuple[str, ...]
    probs: bool
    window: int
    flank: int
    on_ref_mismatch: str
    variant_index: int | None = None
    llr_flank: int = 8  # flank bases each side of an indel whose log-probabilities `haplotype_side` compares

    @property
    def centre(self) -> int:
        """Index of the variant in its window."""
        return self.window // 2 if self.variant_index is None else self.variant_index


def change_row(change: Change, settings: Settings) -> int:
    """Window row of a change's first base: its span centred on the variant index (a SNV at the index)."""
    return settings.centre - change.span // 2


def fits_window(change: Change, settings: Settings) -> bool:
    """A change is scored when it spans at most half the window and lies inside it."""
    row = change_row(change, settings)
    return change.span <= settings.window // 2 and row >= 0 and row + change.span <= settings.window


def aligned_rows(change: Change, side: str, settings: Settings, flank: int | None = None) -> np.ndarray:
    """Rows of the `side` ("ref" or "alt") window holding the bases both windows share, in the same order
    in each: the left flank, the changed block itself for a substitution (its rows line up), and the
    right flank, up to `flank` bases each side of the change (None: as far as both windows reach).

    Both windows start at the same reference base and hold the change at `change_row`; after it the REF
    window continues with the reference and the ALT window with the same reference bases, shifted by the
    difference in length, so the right flanks line up base for base."""
    row, window = change_row(change, settings), settings.window
    reach = window if flank is None else flank
    right = min(reach, window - row - change.span)  # both windows hold this much after the change
    allele = len(change.ref if side == "ref" else change.alt)
    middle = np.arange(row, row + allele) if change.is_substitution else np.arange(0)
    left = np.arange(max(row - reach, 0), row)
    return np.concatenate([left, middle, np.arange(row + allele, row + allele + right)]).astype(np.int64)


class ScorePlan:
    """The windows a group of changes needs, each listed once, and the scores read back from their outputs.

    `add` every change first; then run `logit_jobs` through the model's conjoined logits and
    `embed_jobs` through its conjoined embeddings (`window_for` gives ids and rows to keep), pass each
    output to `keep`, and read the scores with `allele_scores`. `tokenizer` gives the ids of [MASK] and
    the bases. Every change's windows start at the same reference base, with the change at `change_row`.

    - Substitutions (SNV, MNV): one window of the reference with every changed base masked, shared by
      all ALTs that change the same bases (all three ALTs of a SNV); `llr` is the sum over the changed
      bases of logit(ALT) - logit(REF). For a SNV that is the masked log-likelihood ratio.
    - Insertions, deletions, complex changes: two windows, the REF haplotype with its REF bases masked
      and the ALT haplotype with its ALT bases masked (`haplotype_side`), each reduced to one number.
    - `llr-unmasked` (substitutions): grid tiles of the reference, one per central half (`unmasked_tile`).
    - `emb-cos`/`emb-l2`: the unmasked REF and ALT windows, averaged over `aligned_rows` within the flank.
    """

    def __init__(self, settings: Settings, tokenizer: Tokenizer = CADUCEUS):
        self.settings, self.tokenizer = settings, tokenizer
        self.scores, self.window = settings.scores, settings.window
        self.logit_jobs: dict[JobKey, None] = {}
        self.embed_jobs: dict[JobKey, None] = {}
        self._outputs: dict[JobKey, np.ndarray] = {}
        self._bases: dict[JobKey, np.ndarray] = {}  # base columns of haplotype windows, unmasked
        self._tile_rows: dict[JobKey, set[int]] = {}  # the rows of a tile that score variants

    @property
    def _masked(self) -> bool:
        return "llr" in self.scores or self.settings.probs

    @property
    def _embeddings(self) -> bool:
        return "emb-cos" in self.scores or "emb-l2" in self.scores

    def add(self, contig: str, change: Change) -> None:
        """List the windows `change` (which `fits_window`) needs."""
        if change.kind == "none":
            return
        if change.is_substitution:
            if self._masked:
                self.logit_jobs[self._masked_key(contig, change)] = None
            if "llr-unmasked" in self.scores:
                for offset in change.changed_offsets():
                    start, index = unmasked_tile(change.pos0 + offset, self.window)
                    self.logit_jobs[("tile", contig, start)] = None
                    self._tile_rows.setdefault(("tile", contig, start), set()).add(index)
        elif "llr" in self.scores:
            for key in self._haplotype_keys(contig, change):
                self.logit_jobs[key] = None
        if self._embeddings:
            self.embed_jobs[self._emb_key(contig, change, "ref")] = None
            self.embed_jobs[self._emb_key(contig, change, "alt")] = None

    def _masked_key(self, contig: str, change: Change) -> JobKey:
        row = change_row(change, self.settings)
        rows = tuple(row + offset for offset in change.changed_offsets())
        return ("masked", contig, change.pos0 - row, rows)

    def _haplotype_keys(self, contig: str, change: Change) -> tuple[JobKey, JobKey]:
        start = change.pos0 - change_row(change, self.settings)
        return ("ref-hap", contig, start, change), ("alt-hap", contig, start, change)

    def _emb_key(self, contig: str, change: Change, side: str) -> JobKey:
        rows = tuple(aligned_rows(change, side, self.settings, self.settings.flank).tolist())
        start = change.pos0 - change_row(change, self.settings)
        if side == "ref":  # the reference window: shared by every change with the same rows
            return ("ref-emb", contig, start, rows)
        return ("alt-emb", contig, start, rows, change)

    def window_span(self, key: JobKey) -> tuple[str, int, int]:
        """(contig, start, end) of the reference bases a job's window is made from: a deletion's ALT window
        reads as many more as it deletes."""
        kind, contig, start = key[:3]
        extra = max(len(key[-1].ref) - len(key[-1].alt), 0) if kind in ("alt-hap", "alt-emb") else 0
        return contig, start, start + self.window + extra

    def window_for(self, key: JobKey, reference_ids: np.ndarray) -> tuple[np.ndarray, slice | np.ndarray | None]:
        """Token ids and output rows of a job, given the reference ids of its `window_span`. A tile's
        rows are those of its variants only: kept for a whole chunk, its other rows would be memory
        per record (W/2 rows for a lone variant)."""
        kind, mask = key[0], self.tokenizer.mask_id
        if kind == "tile":
            return reference_ids, np.array(sorted(self._tile_rows[key]))
        if kind == "masked":
            rows = np.array(key[3])
            return with_base(reference_ids, rows, mask), rows
        if kind == "ref-emb":
            return reference_ids, np.array(key[3])
        if kind == "alt-emb":
            return self._alt_haplotype(key[-1], reference_ids), np.array(key[3])
        change = key[3]  # a haplotype window: the REF or ALT allele masked at the change's row
        row = change_row(change, self.settings)
        if kind == "ref-hap":
            ids, length = reference_ids, len(change.ref)
        else:
            ids, length = self._alt_haplotype(change, reference_ids), len(change.alt)
        self._bases[key] = self.tokenizer.columns(ids)  # read back by `keep`, on the calling thread
        return with_base(ids, np.arange(row, row + length), mask), None

    def _alt_haplotype(self, change: Change, reference_ids: np.ndarray) -> np.ndarray:
        """The window with `change` spliced in at its row: the ALT bases, then the reference after REF."""
        row = change_row(change, self.settings)
        alt_ids = self.tokenizer.encode(change.alt)
        return np.concatenate([reference_ids[:row], alt_ids, reference_ids[row + len(change.ref) :]])[: self.window]

    def keep(self, key: JobKey, output: np.ndarray) -> None:
        """Store what the scores need from one output (of `window_for`'s rows): logits rows as they are,
        a tile's by their row in the tile, embeddings as their mean."""
        if key in self.embed_jobs:
            self._outputs[key] = output.mean(axis=0, dtype=np.float64)
        elif key[0] in ("ref-hap", "alt-hap"):  # one number per window: memory does not grow with W
            side = "ref" if key[0] == "ref-hap" else "alt"
            self._outputs[key] = haplotype_side(output, self._bases.pop(key), key[3], side, self.settings)
        elif key[0] == "tile":
            self._outputs[key] = dict(zip(sorted(self._tile_rows[key]), output, strict=True))
        else:
            self._outputs[key] = output

    def allele_scores(self, contig: str, places: Sequence[Change]) -> dict[str, float]:
        """The requested scores (names of SCORES, plus PROBS with `probs`) of one ALT, and LOGITS for a SNV
        when a logits row gives them (see `logit_row`): the mean over the places its change is scored at
        (`alleles.placements`: one, or an indel's two middle places in a repeat). Scores that do not apply
        to the class (`llr-unmasked` and PROBS of an indel) are absent; a change of nothing scores 0."""
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
            ref_key, alt_key = self._haplotype_keys(contig, change)
            values["llr"] = self._outputs[alt_key] - self._outputs[ref_key]
        if self._embeddings:
            ref_mean = self._outputs[self._emb_key(contig, change, "ref")]
            alt_mean = self._outputs[self._emb_key(contig, change, "alt")]
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
        if self._masked:
            rows = self._outputs[self._masked_key(contig, change)]
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
        if self._masked:
            centre = self.settings.centre
            return self._outputs[("masked", contig, p0 - centre, (centre,))][0]
        if "llr-unmasked" in self.scores:
            return self._tile_row(contig, p0)
        return None

    def _tile_row(self, contig: str, p0: int) -> np.ndarray:
        start, index = unmasked_tile(p0, self.window)
        return self._outputs[("tile", contig, start)][index]


def haplotype_side(logits: np.ndarray, bases: np.ndarray, change: Change, side: str, settings: Settings) -> float:
    """One side ("ref" or "alt") of the likelihood score of an insertion, deletion or complex change: the
    score is the ALT side minus the REF side, in nats, how much more the model expects the ALT
    haplotype than the REF haplotype around the change.

    The window (W rows of A, C, G, T logits; `bases` its bases as columns, -1 for N) holds this side's
    allele masked at `change_row`. The side is the allele's bases scored against what the model
    expects there, sum of log P(base) + H (H: the entropy of that masked position, so a base as likely
    as the model's average guess adds 0 and alleles of any length sit on one scale), plus log P(base)
    of the flank bases the two windows share within `settings.llr_flank` of the change
    (`aligned_rows`: the same reference bases, row for row; N rows add 0 on both sides). The variant's
    effect on its flanks is mostly within a few bases; farther out the sum gathers what the windows'
    different ends do to each base instead (docs/commands/score-variants.md's variant-class table measures both).
    Identical haplotypes score 0, and a deletion scores minus the insertion that undoes it (the same
    two windows, sides swapped).
    """
    row = change_row(change, settings)
    log_probs = nucleotide_log_probs(logits)
    entropy = -(np.exp(log_probs) * log_probs).sum(axis=1)
    base_log_prob = np.where(bases >= 0, log_probs[np.arange(len(bases)), np.maximum(bases, 0)], 0.0)
    allele = np.arange(row, row + len(change.ref if side == "ref" else change.alt))
    flank = aligned_rows(change, side, settings, settings.llr_flank)
    return float((base_log_prob[allele] + entropy[allele]).sum() + base_log_prob[flank].sum())


# ---------------------------------------------------------------------------------------------
# settings' defaults

# Default --window: the model's training length, at most this. docs/commands/score-variants.md's window table shows
# the masked LLR of the shipped model hardly changes past a few hundred bases, while the cost of
# every score grows with W; 2,048 keeps the published 131k models at a practical rate.
MAX_DEFAULT_WINDOW = 2048
DEFAULT_FLANK = 768  # as in the Caduceus paper's variant-effect features (1,537 positions around the variant)


def default_window(trained: int | None) -> int:
    """The model's training length `trained` (made even), at most MAX_DEFAULT_WINDOW; that maximum when unknown."""
    return max(2, min(trained or MAX_DEFAULT_WINDOW, MAX_DEFAULT_WINDOW) // 2 * 2)


# ---------------------------------------------------------------------------------------------
# INFO fields: keys, and descriptions that say how each number was computed

INFO_KEYS = {
    "llr": "CADUCEUS_LLR",
    "llr-unmasked": "CADUCEUS_LLR_UNMASKED",
    "emb-cos": "CADUCEUS_EMB_COS",
    "emb-l2": "CADUCEUS_EMB_L2",
    "p-ref": "CADUCEUS_P_REF",
    "p-alt": "CADUCEUS_P_ALT",
}


def percentile_name(score: str) -> str:
    """The name of a score's percentile among a background's (`score-variants --background`)."""
    return f"{score}-pct"


INFO_KEYS |= {percentile_name(score): f"{INFO_KEYS[score]}_PCT" for score in SCORES}
CLASS_KEY = "CADUCEUS_CLASS"
FLAG_KEY = "CADUCEUS_FLAG"


@dataclass(frozen=True)
class InfoField:
    key: str
    type: str  # "Float" or "String"
    description: str


def _model_text(model_obj: object) -> str:
    provenance = getattr(model_obj, "provenance", {})
    return f"{provenance.get('source')} (revision {provenance.get('revision')}, sha256 {str(provenance.get('sha256'))[:12]})"


def rc_text(model_obj: object) -> str:
    """How the model's two strands are combined (what `rc="auto"` does for its variant)."""
    if getattr(model_obj, "variant", "ph") == "ps":
        return "RC-conjoined in one pass (PS model, reverse-complement equivariant)"
    return "RC-conjoined (PH model: mean of the forward pass and the reverse-complement pass mapped back)"


def info_fields(settings: Settings, model_obj: object) -> list[InfoField]:
    """Declarations whose descriptions say how each number was computed."""
    w, model, rc = settings.window, _model_text(model_obj), rc_text(model_obj)
    # the flank is clipped to the window: say what was averaged, not what was asked for
    span = "the whole window" if settings.flank >= w // 2 else f"{settings.flank} bp each side of it"
    where = f"in the centre (index {w // 2})" if settings.centre == w // 2 else f"at index {settings.centre}"
    masked = f"the changed bases replaced by [MASK] {where} of a {w} bp window"
    per_score = {
        "llr": "Caduceus log-likelihood ratio, nats; negative: the model finds ALT less likely. "
        f"Substitutions: sum of logit(ALT) - logit(REF) over the changed bases, with {masked} "
        "(a SNV: log P(ALT)/P(REF)); insertions, deletions, complex: log-probabilities of the ALT minus the "
        f"REF haplotype in {w} bp windows aligned base for base, each allele masked and scored against the "
        f"model's expectation (log P + entropy), plus the {settings.llr_flank} flank bases each side both share",
        "llr-unmasked": "Caduceus unmasked log-likelihood ratio logit(ALT) - logit(REF), summed over the changed "
        f"bases of a substitution, read from one pass over the reference in a grid tile of {w} bp whose "
        "central half holds the base; missing for insertions, deletions and complex changes",
        "emb-cos": "Caduceus cosine distance (1 - cosine) between mean embeddings of the REF and ALT "
        f"{w} bp windows around the variant, over the flank bases both share, averaged over {span}",
        "emb-l2": "Caduceus L2 distance between mean embeddings of the REF and ALT "
        f"{w} bp windows around the variant, over the flank bases both share, averaged over {span}",
        "p-ref": f"Caduceus P(REF) of a substitution, softmax over A C G T logits with {masked} "
        "(product over changed bases)",
        "p-alt": f"Caduceus P(ALT) of a substitution, softmax over A C G T logits with {masked} "
        "(product over changed bases)",
    }
    names = list(settings.scores) + (list(PROBS) if settings.probs else [])
    fields = [InfoField(INFO_KEYS[n], "Float", f"{per_score[n]}; model {model}; {rc}") for n in names]
    classes = ", ".join(CLASSES)
    fields.append(
        InfoField(
            CLASS_KEY,
            "String",
            f"Class of the change each ALT makes once shared bases are trimmed ({classes}); . when not scored",
        )
    )
    reasons = ", ".join(f"{flag} ({meaning})" for flag, meaning in FLAGS.items())
    fields.append(InfoField(FLAG_KEY, "String", f"Why the Caduceus scores of an ALT are missing: {reasons}"))
    return fields


# Per-base scores of one RC-conjoined pass over the reference (`caduceus track`, `caduceus ism`).
#
# Track scores read the logits at each position of the unmodified reference, so one pass scores
# every base and every single-base change there ("unmasked", as `llr-unmasked`). LLRs are
# differences of logits, as `log_likelihood_ratio`: the same number under the 4-way softmax over
# A, C, G, T (the normalisation of `nucleotide_probs`) or the full one. Positions whose reference
# is not A, C, G or T (N, padding) have no reference allele, so every value there is NaN.

TRACK_SCORES = ("ref-logprob", "entropy", "llr-min", "llr-mean")


def substitution_llrs(logits: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(L, 4) log P(base) - log P(ref) for base = A, C, G, T at each position, in float64.

    `logits` are (L, 4) A, C, G, T logits and `columns` (L,) the reference bases as columns 0-3
    (`Tokenizer.columns`, -1 for N). The reference's own cell and every cell of a non-ACGT
    position are NaN, so the finite cells are exactly the 3 single-base changes of each position,
    each equal to `log_likelihood_ratio`.
    """
    acgt = logits.astype(np.float64)
    rows = np.arange(len(columns))
    llrs = acgt - acgt[rows, columns][:, None]
    llrs[rows, columns] = np.nan
    llrs[columns < 0] = np.nan
    return llrs


def nucleotide_log_probs(logits: np.ndarray) -> np.ndarray:
    """(L, 4) log-softmax over each position's A, C, G, T logits in float64 (the log of `nucleotide_probs`)."""
    acgt = logits.astype(np.float64)
    shifted = acgt - acgt.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def mean_alternative_llr(llrs: np.ndarray) -> np.ndarray:
    """(L,) mean of the 3 LLRs in each row of `substitution_llrs` (0 where the reference is not ACGT)."""
    return np.nan_to_num(llrs, nan=0.0).sum(axis=1) / 3.0  # the reference's NaN cell adds 0


def track_scores(
    logits: np.ndarray, columns: np.ndarray, scores: Sequence[str] = TRACK_SCORES
) -> dict[str, np.ndarray]:
    """The requested TRACK_SCORES of each position, float32 (L,) arrays, NaN where the reference is not ACGT.

    `logits` (L, 4) are the A, C, G, T columns of the model's `logits_conjoined` rows for the
    reference, whose bases are `columns` (L,) (`Tokenizer.columns`).
    ref-logprob: log P(ref) under the A/C/G/T softmax; entropy: of that distribution, in nats;
    llr-min: the single-base change the model finds least likely (the smallest of the 3 LLRs); llr-mean:
    their mean.
    """
    unknown = [name for name in scores if name not in TRACK_SCORES]
    if unknown:
        raise UsageError(f"--score {unknown[0]}: not a track score; choose from {', '.join(TRACK_SCORES)}")
    no_reference = columns < 0
    values: dict[str, np.ndarray] = {}
    if "ref-logprob" in scores or "entropy" in scores:
        log_probs = nucleotide_log_probs(logits)
        values["ref-logprob"] = log_probs[np.arange(len(columns)), columns]
        values["entropy"] = -(np.exp(log_probs) * log_probs).sum(axis=1)
    if "llr-min" in scores or "llr-mean" in scores:
        llrs = substitution_llrs(logits, columns)
        values["llr-mean"] = mean_alternative_llr(llrs)
        values["llr-min"] = np.where(np.isnan(llrs), np.inf, llrs).min(axis=1)  # NaN cells never win
    out = {}
    for name in scores:
        track = values[name].astype(np.float32)
        track[no_reference] = np.nan
        out[name] = track
    return out


ISM_COLUMNS = ("chrom", "pos", "ref", "alt", "llr", "logit_ref", "logit_alt")


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


# Beyond ~10 kbp the ISM figure is no longer readable, and `--mode masked` runs one model window per base.
ISM_MAX_BASES = 10_000


def check_ism_region(chrom: str, start: int, end: int) -> None:
    """An ISM region [start, end) must hold at least one base and at most ISM_MAX_BASES."""
    where = f"{chrom}:{start + 1}-{end}"
    if end <= start:
        raise InputError(f"{where}: the region is empty")
    if end - start > ISM_MAX_BASES:
        raise InputError(f"{where}: {end - start:,} bp; ism takes regions of at most {ISM_MAX_BASES:,} bp")
