"""Tokenizing DNA text and reverse-complementing ids."""

import numpy as np
import pytest

from caduceus_cli.errors import InputError
from caduceus_cli.tokens import CADUCEUS, soft_mask


def test_bases_in_either_case_map_to_published_ids():
    assert CADUCEUS.encode("ACGTNacgtn").tolist() == [7, 8, 9, 10, 11] * 2


def test_iupac_ambiguity_letters_read_as_n():
    assert CADUCEUS.encode("RYSWKMBDHVUXryswkmbdhvux").tolist() == [11] * 24


@pytest.mark.parametrize(
    ("text", "shown"), [("AC-GT", "'-'"), ("ACG T", "' '"), ("AC1", "'1'"), ("ACJ", "'J'")]
)
def test_anything_but_a_nucleotide_letter_is_an_input_error(text, shown):
    with pytest.raises(InputError, match=f"chr9:5: character {shown} at offset"):
        CADUCEUS.encode(text, where="chr9:5")


def test_bytes_and_str_tokenize_the_same():
    assert np.array_equal(CADUCEUS.encode(b"GATTACA"), CADUCEUS.encode("GATTACA"))


def test_reverse_complement_of_ids_swaps_pairs_and_reverses():
    ids = CADUCEUS.encode("AACGTN")
    assert CADUCEUS.reverse_complement(ids).tolist() == CADUCEUS.encode("NACGTT").tolist()
    batch = np.stack([ids, ids[::-1]])
    assert np.array_equal(CADUCEUS.reverse_complement(CADUCEUS.reverse_complement(batch)), batch)


def test_soft_mask_marks_lowercase_bases():
    assert soft_mask("ACgtN").tolist() == [False, False, True, True, False]
