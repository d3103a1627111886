"""What a variant score is: window geometry and scores as functions of logits and embeddings.

Pure numpy, no files and no model: `score-variants` builds the windows described here, runs
them through the engine and hands the outputs to these functions. Every rule of what is scored
lives here too: which ALTs score as SNVs and the flags of those that do not, the settings and
their defaults (window, flank), and the INFO keys with descriptions of how each number was
computed.

Windows (0-based, half-open, W even): a SNV at p0 is scored in the window
`[p0 - W//2, p0 - W//2 + W)`, so the variant sits at index W//2; bases outside the contig read
as N. The unmasked LLR instead reads a fixed grid of tiles (see `unmasked_tile`), so that one
pass over the reference scores every variant in a tile's central half, whatever the other
records are: shards and a single run give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.tokens import A_ID, C_ID, G_ID, MASK_ID, NUCLEOTIDE_IDS, T_ID

ACGT = "ACGT"  # the order of the LM's nucleotide logits (NUCLEOTIDE_IDS)
BASE_ID = {"A": A_ID, "C": C_ID, "G": G_ID, "T": T_ID}


def check_window(window: int) -> None:
    """W must be even (the variant at W//2 has W//2 bases on its left, W//2 - 1 on its right) and >= 2."""
    if window < 2 or window % 2:
        raise UsageError(f"--window {window}: must be an even number of bases, at least 2")


def variant_window(p0: int, window: int) -> tuple[int, int]:
    """[start, end) of the window centred on 0-based position p0 (p0 at index window // 2)."""
    start = p0 - window // 2
    return start, start + window


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


def flank_rows(window: int, flank: int) -> slice:
    """Rows of a variant window within `flank` bases of the variant (index W//2), clipped to the window."""
    centre = window // 2
    return slice(max(centre - flank, 0), min(centre + flank + 1, window))


def with_base(ids: np.ndarray, index: int, token: int) -> np.ndarray:
    """A copy of `ids` with position `index` replaced by `token` (an alternative base or MASK_ID)."""
    out = ids.copy()
    out[index] = token
    return out


def masked(ids: np.ndarray, index: int) -> np.ndarray:
    return with_base(ids, index, MASK_ID)


def log_likelihood_ratio(logits: np.ndarray, ref: str, alt: str) -> float:
    """logit[alt] - logit[ref] of one position's 16 logits: log P(alt) - log P(ref) under any softmax."""
    return float(logits[BASE_ID[alt]]) - float(logits[BASE_ID[ref]])


def nucleotide_probs(logits: np.ndarray) -> dict[str, float]:
    """Softmax over the A, C, G, T logits of one position (computed in float64)."""
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

JobKey = tuple  # ("masked" | "ref" , contig, p0) | ("alt", contig, p0, base) | ("tile", contig, start)


class ScorePlan:
    """The windows a group of SNVs needs, each listed once, and the scores read back from their outputs.

    `add` every SNV first; then run `logit_jobs` through the model's conjoined logits and
    `embed_jobs` through its conjoined embeddings (`window_for` gives ids and rows to keep), pass
    each output to `keep`, and read the scores with `allele_scores`. Windows are shared: one
    masked pass per position (all ALTs there), one tile per central half for the unmasked LLR,
    one reference embedding per position.
    """

    def __init__(self, scores: tuple[str, ...], probs: bool, window: int, flank: int):
        self.scores, self.probs, self.window, self.flank = scores, probs, window, flank
        self.logit_jobs: dict[JobKey, None] = {}
        self.embed_jobs: dict[JobKey, None] = {}
        self._outputs: dict[JobKey, np.ndarray] = {}
        self._tile_rows: dict[JobKey, set[int]] = {}  # the rows of a tile that score variants

    @property
    def _masked(self) -> bool:
        return "llr" in self.scores or self.probs

    @property
    def _embeddings(self) -> bool:
        return "emb-cos" in self.scores or "emb-l2" in self.scores

    def add(self, contig: str, p0: int, alt: str) -> None:
        if self._masked:
            self.logit_jobs[("masked", contig, p0)] = None
        if "llr-unmasked" in self.scores:
            start, index = unmasked_tile(p0, self.window)
            self.logit_jobs[("tile", contig, start)] = None
            self._tile_rows.setdefault(("tile", contig, start), set()).add(index)
        if self._embeddings:
            self.embed_jobs[("ref", contig, p0)] = None
            self.embed_jobs[("alt", contig, p0, alt)] = None

    def window_for(self, key: JobKey, reference_ids: np.ndarray) -> tuple[np.ndarray, slice | np.ndarray]:
        """Token ids and output rows of a job, given the reference ids of its window (`window_span`).
        A tile's rows are those of its variants only: kept for a whole chunk, its other rows would be
        memory per record (W/2 rows for a lone variant)."""
        centre = self.window // 2
        kind = key[0]
        if kind == "tile":
            return reference_ids, np.array(sorted(self._tile_rows[key]))
        if kind == "masked":
            return masked(reference_ids, centre), slice(centre, centre + 1)
        if kind == "alt":
            return with_base(reference_ids, centre, BASE_ID[key[3]]), flank_rows(self.window, self.flank)
        return reference_ids, flank_rows(self.window, self.flank)

    def window_span(self, key: JobKey) -> tuple[str, int, int]:
        """(contig, start, end) of the reference bases a job's window covers."""
        start = key[2] if key[0] == "tile" else variant_window(key[2], self.window)[0]
        return key[1], start, start + self.window

    def keep(self, key: JobKey, output: np.ndarray) -> None:
        """Store what the scores need from one output (of `window_for`'s rows): logits rows as they
        are, a tile's by their row in the tile, embeddings as their mean."""
        if key in self.embed_jobs:
            self._outputs[key] = output.mean(axis=0, dtype=np.float64)
        elif key[0] == "tile":
            self._outputs[key] = dict(zip(sorted(self._tile_rows[key]), output, strict=True))
        else:
            self._outputs[key] = output

    def allele_scores(self, contig: str, p0: int, ref: str, alt: str) -> dict[str, float]:
        """The requested scores (names of SCORES, plus PROBS with `probs`) of one SNV, and LOGITS when
        a logits row gives them (see `logit_row`)."""
        values: dict[str, float] = {}
        if self._masked:
            logits = self._masked_row(contig, p0)
            if "llr" in self.scores:
                values["llr"] = log_likelihood_ratio(logits, ref, alt)
            if self.probs:
                probs = nucleotide_probs(logits)
                values["p-ref"], values["p-alt"] = probs[ref], probs[alt]
        if "llr-unmasked" in self.scores:
            values["llr-unmasked"] = log_likelihood_ratio(self._tile_row(contig, p0), ref, alt)
        logits = self.logit_row(contig, p0)
        if logits is not None:
            values["logit-ref"] = float(logits[BASE_ID[ref]])
            values["logit-alt"] = float(logits[BASE_ID[alt]])
        if self._embeddings:
            ref_mean = self._outputs[("ref", contig, p0)]
            alt_mean = self._outputs[("alt", contig, p0, alt)]
            if "emb-cos" in self.scores:
                values["emb-cos"] = cosine_distance(ref_mean, alt_mean)
            if "emb-l2" in self.scores:
                values["emb-l2"] = l2_distance(ref_mean, alt_mean)
        return values

    def logit_row(self, contig: str, p0: int) -> np.ndarray | None:
        """The (V,) logits that score SNVs at p0: the masked pass's when it runs (`llr`, `probs`), else
        the unmasked tile's (`llr-unmasked`); None when only embedding scores are asked for."""
        if self._masked:
            return self._masked_row(contig, p0)
        if "llr-unmasked" in self.scores:
            return self._tile_row(contig, p0)
        return None

    def _masked_row(self, contig: str, p0: int) -> np.ndarray:
        return self._outputs[("masked", contig, p0)][0]

    def _tile_row(self, contig: str, p0: int) -> np.ndarray:
        start, index = unmasked_tile(p0, self.window)
        return self._outputs[("tile", contig, start)][index]


# ---------------------------------------------------------------------------------------------
# settings and their defaults

@dataclass(frozen=True)
class Settings:
    """What is computed: score names, --probs, window, flank (clamped by flank_rows), --on-ref-mismatch."""

    scores: tuple[str, ...]
    probs: bool
    window: int
    flank: int
    on_ref_mismatch: str


# Default --window: the model's training length, at most this. The README's window table shows
# the masked LLR of the shipped model hardly changes past a few hundred bases, while the cost of
# every score grows with W; 2,048 keeps the published 131k models at a practical rate.
MAX_DEFAULT_WINDOW = 2048
DEFAULT_FLANK = 768  # as in the Caduceus paper's variant-effect features (1,537 positions around the variant)


def default_window(model_obj: object) -> int:
    """The model's training length (made even), at most MAX_DEFAULT_WINDOW; that maximum when unknown."""
    trained = getattr(model_obj, "default_window", None) or MAX_DEFAULT_WINDOW
    return max(2, min(trained, MAX_DEFAULT_WINDOW) // 2 * 2)


# ---------------------------------------------------------------------------------------------
# alleles: what each ALT scores as, or why it is not scored

# Why an ALT is not scored, in the order they are tested (the first that applies is reported).
FLAGS = {
    "contig_missing": "contig not in the FASTA",
    "ref_mismatch": "REF differs from the FASTA",
    "symbolic": "symbolic, * or breakend ALT",
    "not_acgt": "a base other than A C G T",
    "indel": "REF and ALT lengths differ",
    "mnv": "several bases differ",
    "alt_is_ref": "ALT equals REF: no change to score",
}


@dataclass(frozen=True)
class Snv:
    """One ALT allele reduced to the single base it changes."""

    pos0: int  # 0-based position of the changed base
    ref: str  # uppercase reference base (from the FASTA, equal to the VCF's REF)
    alt: str  # uppercase alternative base


def classify_alleles(ref: str, alts: tuple[str, ...], fasta_ref: str | None, pos0: int) -> list[Snv | str]:
    """For each ALT, the SNV it scores as, or the flag saying why it cannot be scored.

    `fasta_ref` is the FASTA over the REF's span (None when the contig is not in the FASTA);
    REF is compared case-insensitively. A same-length REF/ALT pair that differs at exactly one
    base (a SNV padded to a longer REF in a multi-allelic record) is scored at that base.
    """
    if fasta_ref is None:
        return ["contig_missing"] * len(alts)
    ref = ref.upper()
    if ref != fasta_ref.upper():
        return ["ref_mismatch"] * len(alts)
    return [_classify_alt(ref, alt.upper(), pos0) for alt in alts]


def _classify_alt(ref: str, alt: str, pos0: int) -> Snv | str:
    if alt.startswith("<") or alt == "*" or any(char in alt for char in "[].") or not alt:
        return "symbolic"
    if not set(ACGT).issuperset(ref + alt):
        return "not_acgt"
    if len(ref) != len(alt):
        return "indel"
    differ = [i for i, (r, a) in enumerate(zip(ref, alt, strict=True)) if r != a]
    if len(differ) > 1:
        return "mnv"
    if not differ:
        return "alt_is_ref"
    return Snv(pos0 + differ[0], ref[differ[0]], alt[differ[0]])


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
FLAG_KEY = "CADUCEUS_FLAG"


@dataclass(frozen=True)
class InfoField:
    key: str
    type: str  # "Float" or "String"
    description: str


def _model_text(model_obj: object) -> str:
    provenance = getattr(model_obj, "provenance", {})
    return f"{provenance.get('source')} (revision {provenance.get('revision')}, sha256 {str(provenance.get('sha256'))[:12]})"


def _rc_text(model_obj: object) -> str:
    if getattr(model_obj, "variant", "ph") == "ps":
        return "RC-conjoined in one pass (PS model, reverse-complement equivariant)"
    return "RC-conjoined (PH model: mean of the forward pass and the reverse-complement pass mapped back)"


def info_fields(settings: Settings, model_obj: object) -> list[InfoField]:
    """Declarations whose descriptions say how each number was computed."""
    w, model, rc = settings.window, _model_text(model_obj), _rc_text(model_obj)
    # flank_rows clips the flank to the window: say what was averaged, not what was asked for
    span = "the whole window" if settings.flank >= w // 2 else f"{settings.flank} bp each side of it"
    masked = f"the variant base replaced by [MASK] in the centre (index {w // 2}) of a {w} bp window"
    per_score = {
        "llr": f"Caduceus masked log-likelihood ratio logit(ALT) - logit(REF) = log P(ALT)/P(REF) "
        f"with {masked}; negative: the model finds ALT less likely",
        "llr-unmasked": "Caduceus unmasked log-likelihood ratio logit(ALT) - logit(REF) read from one pass "
        f"over the reference in a grid tile of {w} bp whose central half holds the variant",
        "emb-cos": "Caduceus cosine distance (1 - cosine) between mean embeddings of the REF and ALT "
        f"{w} bp windows centred on the variant, averaged over {span}",
        "emb-l2": "Caduceus L2 distance between mean embeddings of the REF and ALT "
        f"{w} bp windows centred on the variant, averaged over {span}",
        "p-ref": f"Caduceus P(REF), softmax over A C G T logits with {masked}",
        "p-alt": f"Caduceus P(ALT), softmax over A C G T logits with {masked}",
    }
    names = list(settings.scores) + (list(PROBS) if settings.probs else [])
    fields = [InfoField(INFO_KEYS[n], "Float", f"{per_score[n]}; model {model}; {rc}") for n in names]
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
def reference_columns(reference_ids: np.ndarray) -> np.ndarray:
    """(L,) column of each reference base among A, C, G, T (0-3), or -1 where it is not one of them."""
    columns = np.full(reference_ids.shape, -1, dtype=np.int64)
    for column, token in enumerate(NUCLEOTIDE_IDS):
        columns[reference_ids == token] = column
    return columns


def substitution_llrs(logits: np.ndarray, reference_ids: np.ndarray) -> np.ndarray:
    """(L, 4) log P(base) - log P(ref) for base = A, C, G, T at each position, in float64.

    The reference's own cell and every cell of a non-ACGT position are NaN, so the finite cells
    are exactly the 3 single-base changes of each position, each equal to `log_likelihood_ratio`.
    """
    acgt = logits[:, NUCLEOTIDE_IDS].astype(np.float64)
    columns = reference_columns(reference_ids)
    rows = np.arange(len(columns))
    llrs = acgt - acgt[rows, columns][:, None]
    llrs[rows, columns] = np.nan
    llrs[columns < 0] = np.nan
    return llrs


def nucleotide_log_probs(logits: np.ndarray) -> np.ndarray:
    """(L, 4) log-softmax over each position's A, C, G, T logits in float64 (the log of `nucleotide_probs`)."""
    acgt = logits[:, NUCLEOTIDE_IDS].astype(np.float64)
    shifted = acgt - acgt.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def mean_alternative_llr(llrs: np.ndarray) -> np.ndarray:
    """(L,) mean of the 3 LLRs in each row of `substitution_llrs` (0 where the reference is not ACGT)."""
    return np.nan_to_num(llrs, nan=0.0).sum(axis=1) / 3.0  # the reference's NaN cell adds 0


def track_scores(
    logits: np.ndarray, reference_ids: np.ndarray, scores: Sequence[str] = TRACK_SCORES
) -> dict[str, np.ndarray]:
    """The requested TRACK_SCORES of each position, float32 (L,) arrays, NaN where the reference is not ACGT.

    `logits` (L, V) are the model's `logits_conjoined` rows for the reference `reference_ids` (L,).
    ref-logprob: log P(ref) under the A/C/G/T softmax; entropy: of that distribution, in nats;
    llr-min: the most damaging single-base change (the smallest of the 3 LLRs); llr-mean: their mean.
    """
    unknown = [name for name in scores if name not in TRACK_SCORES]
    if unknown:
        raise UsageError(f"--score {unknown[0]}: not a track score; choose from {', '.join(TRACK_SCORES)}")
    columns = reference_columns(reference_ids)
    no_reference = columns < 0
    values: dict[str, np.ndarray] = {}
    if "ref-logprob" in scores or "entropy" in scores:
        log_probs = nucleotide_log_probs(logits)
        values["ref-logprob"] = log_probs[np.arange(len(columns)), columns]
        values["entropy"] = -(np.exp(log_probs) * log_probs).sum(axis=1)
    if "llr-min" in scores or "llr-mean" in scores:
        llrs = substitution_llrs(logits, reference_ids)
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


def ism_table(logits: np.ndarray, reference_ids: np.ndarray, chrom: str, start: int) -> IsmTable:
    """The ISM table of the region starting at 0-based `start` whose reference ids are `reference_ids` (L,).

    Row i of `logits` (L, V) is what the model says at position start + i: the rows of one
    conjoined pass over the reference give the unmasked table (every LLR equal to `llr-unmasked`);
    the centre rows of one masked window per position give the exact masked one (equal to `llr`).
    """
    columns = reference_columns(reference_ids)
    reference = "".join(ACGT[column] if column >= 0 else "N" for column in columns)
    return IsmTable(
        chrom, start, reference, logits[:, NUCLEOTIDE_IDS], substitution_llrs(logits, reference_ids)
    )


# Beyond ~10 kbp the ISM figure is no longer readable, and `--mode masked` runs one model window per base.
ISM_MAX_BASES = 10_000


def check_ism_region(chrom: str, start: int, end: int) -> None:
    """An ISM region [start, end) must hold at least one base and at most ISM_MAX_BASES."""
    where = f"{chrom}:{start + 1}-{end}"
    if end <= start:
        raise InputError(f"{where}: the region is empty")
    if end - start > ISM_MAX_BASES:
        raise InputError(f"{where}: {end - start:,} bp; ism takes regions of at most {ISM_MAX_BASES:,} bp")
