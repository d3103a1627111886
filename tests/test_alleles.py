"""What each ALT changes (`caduceus_cli.alleles`): trimming, classes, flags, and one place per indel in a repeat."""

from __future__ import annotations

import pytest

from caduceus_cli.alleles import Change, classify_alleles, placements, trimmed


def test_snvs_are_scored_and_ref_is_compared_case_insensitively():
    assert classify_alleles("a", ("G", "t"), "A", 99, 1000) == [Change(99, "A", "G"), Change(99, "A", "T")]
    assert classify_alleles("A", ("G",), "a", 99, 1000) == [Change(99, "A", "G")]


@pytest.mark.parametrize(
    ("ref", "alts", "fasta", "expected"),
    [
        ("A", ("G", "C"), None, ["contig_missing", "contig_missing"]),
        ("A", ("G",), "C", ["ref_mismatch"]),
        ("AC", ("A",), "AT", ["ref_mismatch"]),
        ("A", ("<DEL>", "*", "A[chr2:10[", "A."), "A", ["symbolic"] * 4),
        ("A", ("N", "R"), "A", ["not_acgt", "not_acgt"]),
        ("N", ("A",), "N", ["not_acgt"]),
    ],
)
def test_unscorable_alleles_get_their_flag(ref, alts, fasta, expected):
    assert classify_alleles(ref, alts, fasta, 0, 1000) == expected


def test_a_record_past_the_contigs_end_is_flagged_as_such_not_as_a_ref_mismatch():
    """The FASTA reads N past a contig's end, so such a REF would differ; the usual cause is a VCF of
    another assembly version, which its own flag says."""
    assert classify_alleles("A", ("G", "T"), "N", 1000, 1000) == ["past_contig_end", "past_contig_end"]
    assert classify_alleles("AC", ("A",), "GN", 999, 1000) == ["past_contig_end"]
    assert classify_alleles("G", ("A",), "G", 999, 1000) == [Change(999, "G", "A")]  # the last base


@pytest.mark.parametrize(
    ("ref", "alt", "change", "kind"),
    [
        ("A", "G", Change(50, "A", "G"), "snv"),
        ("ACT", "AGT", Change(51, "C", "G"), "snv"),  # a SNV padded to a multi-allelic record's REF
        ("AC", "GT", Change(50, "AC", "GT"), "mnv"),
        ("ACT", "GCA", Change(50, "ACT", "GCA"), "mnv"),  # the shared middle base stays inside the block
        ("AC", "A", Change(51, "C", ""), "del"),  # VCF's padding base trimmed
        ("A", "ATT", Change(51, "", "TT"), "ins"),
        ("ACG", "TT", Change(50, "ACG", "TT"), "complex"),
        ("ACG", "AT", Change(51, "CG", "T"), "complex"),
        ("A", "a", Change(50, "", ""), "none"),
    ],
)
def test_shared_bases_are_trimmed_leaving_the_change_and_its_class(ref, alt, change, kind):
    (got,) = classify_alleles(ref, (alt,), ref, 50, 1000)
    assert got == change and got.kind == kind


def test_trimming_takes_the_shared_end_before_the_shared_start():
    # "CAC" -> "C": the shared C at the end goes first, then nothing is shared at the start
    assert trimmed(Change(10, "CAC", "C")) == Change(10, "CA", "")  # the same haplotype as AC at 11


GENOME = "GCATTTTTGCAACACACACGTAG"


def fetch(start: int, end: int) -> str:
    return "".join(GENOME[i] if 0 <= i < len(GENOME) else "N" for i in range(start, end)).lower()  # any case


@pytest.mark.parametrize(
    "vcf",
    [("ATT", "AT", 2), ("TTT", "TT", 5), ("TTG", "TG", 6), ("TT", "T", 4), ("T", "", 3)],
)
def test_every_representation_of_a_deletion_in_a_repeat_lands_in_the_middle_of_it(vcf):
    ref, alt, pos0 = vcf
    assert placements(trimmed(Change(pos0, ref, alt)), fetch, len(GENOME)) == (Change(5, "T", ""),)  # T run: 3..7


@pytest.mark.parametrize("pos0", [3, 4, 5, 6, 7, 8])
def test_every_representation_of_an_insertion_in_a_repeat_lands_in_the_middle_of_it(pos0):
    # 6 places (before base 3 ... before base 8): the two middle ones
    assert placements(Change(pos0, "", "T"), fetch, len(GENOME)) == (Change(5, "", "T"), Change(6, "", "T"))


def test_a_dinucleotide_repeat_indel_is_rotated_with_its_position():
    # AC repeat at 11..18 (A C A C A C A C): deleting "AC" anywhere in it is one haplotype
    centred = {placements(Change(p, GENOME[p : p + 2], ""), fetch, len(GENOME)) for p in (11, 13, 15, 17)}
    assert centred == {(Change(14, "CA", ""),)}  # 7 places, 11..17
    assert placements(Change(11, "", "AC"), fetch, len(GENOME)) == (Change(15, "", "AC"),)  # 11..19


def test_substitutions_and_indels_outside_repeats_stay_where_they_are():
    assert placements(Change(3, "T", "G"), fetch, len(GENOME)) == (Change(3, "T", "G"),)
    assert placements(Change(1, "C", ""), fetch, len(GENOME)) == (Change(1, "C", ""),)


def test_a_variant_and_its_reverse_complement_are_placed_as_mirror_images():
    rc = GENOME.translate(str.maketrans("ACGT", "TGCA"))[::-1]

    def rc_fetch(start: int, end: int) -> str:
        return "".join(rc[i] if 0 <= i < len(rc) else "N" for i in range(start, end))

    for change in (Change(4, "", "T"), Change(6, "T", ""), Change(13, "CA", ""), Change(12, "", "CA")):
        mirrored = Change(len(GENOME) - change.pos0 - len(change.ref), "", "")
        mirrored = Change(mirrored.pos0, change.ref.translate(str.maketrans("ACGT", "TGCA"))[::-1],
                          change.alt.translate(str.maketrans("ACGT", "TGCA"))[::-1])  # fmt: skip
        forward = placements(change, fetch, len(GENOME))
        backward = placements(mirrored, rc_fetch, len(rc))
        assert sorted(len(GENOME) - p.pos0 - len(p.ref) for p in backward) == sorted(p.pos0 for p in forward)


def test_sliding_stops_at_the_contig_ends():
    # G inserted before or after the first base, G: two places, the left one at the contig's start
    assert placements(Change(0, "", "G"), fetch, len(GENOME)) == (Change(0, "", "G"), Change(1, "", "G"))
    assert placements(Change(len(GENOME), "", "C"), fetch, len(GENOME)) == (Change(len(GENOME), "", "C"),)
