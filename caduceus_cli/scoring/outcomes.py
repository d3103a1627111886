"""What each ALT of a VCF record is scored as: its change at the places it is scored, or why it is not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from caduceus_cli.alleles import Change, classify_alleles, placements
from caduceus_cli.scoring.geometry import fits_window
from caduceus_cli.scoring.settings import Settings

if TYPE_CHECKING:
    from caduceus_cli.io.fasta import Fasta

NONE = "."  # what a VCF or table writes for a class or a flag that does not apply


@dataclass(frozen=True)
class Placed:
    """A scored ALT: its change at each place it is scored (`alleles.placements`: one, or an indel's two
    middle places in a repeat; the scores are the mean over them)."""

    places: tuple[Change, ...]

    @property
    def kind(self) -> str:
        """The change's class (`alleles.CLASSES`), as CADUCEUS_CLASS writes it."""
        return self.places[0].kind

    @property
    def flag(self) -> str:
        return NONE


@dataclass(frozen=True)
class Flagged:
    """An ALT that is not scored, and why (a key of `alleles.FLAGS`)."""

    flag: str

    @property
    def kind(self) -> str:
        return NONE


AlleleOutcome = Placed | Flagged


def scored_alleles(
    fasta: Fasta, contig: str | None, start: int, ref: str, alts: Sequence[str], settings: Settings
) -> list[AlleleOutcome]:
    """The outcome of each ALT of a record at 0-based `start` on FASTA contig `contig` (None: not in the
    FASTA): `Placed`, or `Flagged` (`too_long` when the change does not fit the window)."""
    fasta_ref = None if contig is None else fasta.fetch(contig, start, start + len(ref))
    length = 0 if contig is None else fasta.contigs[contig]
    return [
        _placed(allele, contig, fasta, settings) if isinstance(allele, Change) else Flagged(allele)
        for allele in classify_alleles(ref, tuple(alts), fasta_ref, start, length)
    ]


def _placed(change: Change, contig: str, fasta: Fasta, settings: Settings) -> AlleleOutcome:
    if not fits_window(change, settings):
        return Flagged("too_long")
    return Placed(placements(change, lambda start, end: fasta.fetch(contig, start, end), fasta.contigs[contig]))
