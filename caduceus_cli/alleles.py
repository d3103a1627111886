"""What each ALT allele of a VCF record changes in the reference, in one canonical form, or why it cannot
be scored.

A REF/ALT pair is reduced to the bases it really changes: the bases both share at the end, then at the
start, are trimmed (VCF's padding base, a SNV padded to a multi-allelic record's longer REF), leaving a
`Change` of REF bases replaced by ALT bases at a 0-based position. Its class: `snv`, `mnv` (equal
lengths > 1), `ins`, `del`, `complex` (both sides non-empty, lengths differ) or `none` (ALT equals REF).

An insertion or deletion inside a repeat can be written at several positions with the same resulting
sequence (`bcftools norm` left-aligns it). `placements` puts every such representation at the middle
of the span where it can slide (its two middle positions when there is no single one), so all of them
(left- or right-aligned, with or without a padding base) score the same, and a variant and its
reverse complement on the other strand are scored in mirror-image places.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from caduceus_cli.tokens import ACGT

CLASSES = ("snv", "mnv", "ins", "del", "complex", "none")

# Why an ALT is not scored, in the order they are tested (the first that applies is reported).
FLAGS = {
    "contig_missing": "contig not in the FASTA",
    "past_contig_end": "REF reaches past the end of the FASTA contig (a VCF of another assembly version?)",
    "ref_mismatch": "REF differs from the FASTA",
    "symbolic": "symbolic, * or breakend ALT",
    "not_acgt": "a base other than A C G T",
    "too_long": "the change is longer than half the window",
}

# How far `placements` follows a repeat in each direction: microsatellites are far shorter; an
# indel in a longer repeat is centred within this reach of where the VCF put it.
MAX_REPEAT_SHIFT = 10_000


@dataclass(frozen=True)
class Change:
    """REF bases `ref` at 0-based `pos0` replaced by `alt` (uppercase; either may be empty: an insertion
    goes before the base at `pos0`, a deletion removes `ref` from `pos0` on)."""

    pos0: int
    ref: str
    alt: str

    @property
    def kind(self) -> str:
        if self.ref == self.alt:
            return "none"
        if len(self.ref) == len(self.alt):
            return "snv" if len(self.ref) == 1 else "mnv"
        if not self.ref:
            return "ins"
        return "del" if not self.alt else "complex"

    @property
    def span(self) -> int:
        """Window rows the change occupies: its longer side."""
        return max(len(self.ref), len(self.alt))

    @property
    def is_substitution(self) -> bool:
        return len(self.ref) == len(self.alt)

    def changed_offsets(self) -> list[int]:
        """Offsets within a substitution where REF and ALT differ (the bases masked and scored)."""
        return [i for i, (r, a) in enumerate(zip(self.ref, self.alt, strict=True)) if r != a]


def classify_alleles(
    ref: str, alts: tuple[str, ...], fasta_ref: str | None, pos0: int, contig_length: int
) -> list[Change | str]:
    """For each ALT, the trimmed `Change` it makes, or the flag saying why it cannot be scored.

    `fasta_ref` is the FASTA over the REF's span (None when the contig is not in the FASTA), whose contig
    is `contig_length` bases long; REF is compared case-insensitively.
    """
    if fasta_ref is None:
        return ["contig_missing"] * len(alts)
    if pos0 + len(ref) > contig_length:
        return ["past_contig_end"] * len(alts)
    ref = ref.upper()
    if ref != fasta_ref.upper():
        return ["ref_mismatch"] * len(alts)
    return [_classify_alt(ref, alt.upper(), pos0) for alt in alts]


def _classify_alt(ref: str, alt: str, pos0: int) -> Change | str:
    if alt.startswith("<") or alt == "*" or any(char in alt for char in "[].") or not alt:
        return "symbolic"
    if not set(ACGT).issuperset(ref + alt):
        return "not_acgt"
    return trimmed(Change(pos0, ref, alt))


def trimmed(change: Change) -> Change:
    """The bases shared at the end, then at the start, removed (as `bcftools norm` trims)."""
    ref, alt, pos0 = change.ref, change.alt, change.pos0
    while ref and alt and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while ref and alt and ref[0] == alt[0]:
        ref, alt, pos0 = ref[1:], alt[1:], pos0 + 1
    return Change(pos0, ref, alt)


def placements(change: Change, fetch: Callable[[int, int], str], contig_length: int) -> tuple[Change, ...]:
    """Where an insertion or deletion is scored: the middle of the positions it can slide across in a repeat
    (the same ALT sequence from each), or the two middle ones when their count is even, so that the
    variant written on either strand is scored in the same places. Other changes: themselves.

    `fetch(start, end)` reads reference bases (any case; N outside the contig).
    """
    if change.kind not in ("ins", "del"):
        return (change,)
    left = _shift(change, fetch, contig_length, -1, MAX_REPEAT_SHIFT)
    right = _shift(change, fetch, contig_length, +1, MAX_REPEAT_SHIFT)
    slack = right.pos0 - left.pos0
    middle = _shift(left, fetch, contig_length, +1, slack // 2)
    if slack % 2 == 0:
        return (middle,)
    return middle, _shift(middle, fetch, contig_length, +1, 1)


def _shift(
    change: Change, fetch: Callable[[int, int], str], contig_length: int, direction: int, limit: int
) -> Change:
    """Slide an indel up to `limit` bases in `direction` (-1 left, +1 right) while the resulting sequence
    is unchanged.

    Deleting (or inserting) sequence S at p gives the same haplotype as at p - 1 when the base before p
    equals S's last base (S rotates right), and as at p + 1 when the base after the deleted span (for an
    insertion: the base at p) equals S's first base (S rotates left). Reads the reference in blocks."""
    deleted = change.kind == "del"
    seq, pos0, block_start, block = change.ref or change.alt, change.pos0, 0, ""
    for _ in range(limit):
        # the base that decides the next step: before p going left, after the span (or at p) going right
        at = pos0 - 1 if direction < 0 else pos0 + (len(seq) if deleted else 0)
        if not 0 <= at < contig_length:
            break
        if not block_start <= at < block_start + len(block):
            block_start = max(at - _BLOCK + 1, 0) if direction < 0 else at
            block = fetch(block_start, min(block_start + _BLOCK, contig_length)).upper()
        base = block[at - block_start]
        if direction < 0 and base == seq[-1]:
            seq, pos0 = base + seq[:-1], pos0 - 1
        elif direction > 0 and base == seq[0]:
            seq, pos0 = seq[1:] + base, pos0 + 1
        else:
            break
    return replace(change, pos0=pos0, ref=seq) if deleted else replace(change, pos0=pos0, alt=seq)


_BLOCK = 256  # reference bases read at a time while sliding
