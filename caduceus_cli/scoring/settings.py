"""What `score-variants`, `calibrate` and `ism` compute: the score names, their settings and defaults."""

from __future__ import annotations

from dataclasses import dataclass

from caduceus_cli.errors import UsageError

SCORES = ("llr", "llr-unmasked", "emb-cos", "emb-l2")
DEFAULT_SCORES = ("llr",)
PROBS = ("p-ref", "p-alt")
LOGITS = ("logit-ref", "logit-alt")  # the REF and ALT logits of the row that gave the LLR (tables only)
ON_REF_MISMATCH = ("flag", "skip", "error")  # what a record whose REF differs from the FASTA gets

# Default --window: the model's training length, at most this. docs/commands/score-variants.md's window table shows
# the masked LLR of the shipped model hardly changes past a few hundred bases, while the cost of
# every score grows with W; 2,048 keeps the published 131k models at a practical rate.
MAX_DEFAULT_WINDOW = 2048
DEFAULT_FLANK = 768  # as in the Caduceus paper's variant-effect features (1,537 positions around the variant)


@dataclass(frozen=True, kw_only=True)
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

    @property
    def masked(self) -> bool:
        """Whether the changed bases are scored in masked windows (`llr`, and the probabilities)."""
        return "llr" in self.scores or self.probs

    @property
    def embeddings(self) -> bool:
        """Whether REF and ALT windows are embedded (`emb-cos`, `emb-l2`)."""
        return "emb-cos" in self.scores or "emb-l2" in self.scores


def percentile_name(score: str) -> str:
    """The name of a score's percentile among a background's (`score-variants --background`)."""
    return f"{score}-pct"


def check_window(window: int) -> None:
    """W must be even (the variant at W//2 has W//2 bases on its left, W//2 - 1 on its right) and >= 2."""
    if window < 2 or window % 2:
        raise UsageError(f"--window {window}: must be an even number of bases, at least 2")


def check_variant_index(index: int, window: int) -> None:
    if not 0 <= index < window:
        raise UsageError(f"--variant-index {index}: must be a position of the {window} bp window (0 to {window - 1})")


def default_window(trained: int | None) -> int:
    """The model's training length `trained` (made even), at most MAX_DEFAULT_WINDOW; that maximum when unknown."""
    return max(2, min(trained or MAX_DEFAULT_WINDOW, MAX_DEFAULT_WINDOW) // 2 * 2)
