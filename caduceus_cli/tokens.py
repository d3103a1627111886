"""DNA text <-> Caduceus token ids, and reverse complements of id arrays.

The vocabulary is fixed by the original tokenizer: [CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4
[RESERVED]=5 [UNK]=6 A=7 C=8 G=9 T=10 N=11 (ids 12-15 pad the embedding table). We never add
special tokens. Lookup is one table indexing per sequence, so a 131 kbp window costs microseconds.
"""

from __future__ import annotations

import numpy as np

from caduceus_cli.errors import InputError

MASK_ID = 3
PAD_ID = 4
A_ID, C_ID, G_ID, T_ID, N_ID = 7, 8, 9, 10, 11
NUCLEOTIDE_IDS = np.array([A_ID, C_ID, G_ID, T_ID])  # order of the LM's A, C, G, T logits
VOCAB_SIZE = 16

# comp[id] = complement id: A<->T, C<->G, every other id maps to itself.
COMPLEMENT = np.arange(VOCAB_SIZE, dtype=np.int64)
COMPLEMENT[[A_ID, C_ID, G_ID, T_ID]] = [T_ID, G_ID, C_ID, A_ID]

# IUPAC ambiguity codes (and X, a common hard-mask letter) read as N. The original tokenizer
# maps them to [UNK]=6, an id the published models never saw in training; N is the closer input.
_AMBIGUOUS = "BDHKMNRSUVWXY"
_INVALID = -1
_TABLE = np.full(256, _INVALID, dtype=np.int64)
for _letter, _id in zip("ACGT", (A_ID, C_ID, G_ID, T_ID), strict=True):
    _TABLE[ord(_letter)] = _TABLE[ord(_letter.lower())] = _id
for _letter in _AMBIGUOUS:
    _TABLE[ord(_letter)] = _TABLE[ord(_letter.lower())] = N_ID

_SOFT_MASKED = np.zeros(256, dtype=bool)
_SOFT_MASKED[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)] = True


def tokenize(seq: str | bytes, where: str = "sequence") -> np.ndarray:
    """Return int64 ids for a DNA string; `where` names the input in the error message."""
    raw = np.frombuffer(seq.encode("ascii", "replace") if isinstance(seq, str) else seq, dtype=np.uint8)
    ids = _TABLE[raw]
    bad = np.flatnonzero(ids == _INVALID)
    if bad.size:
        pos = int(bad[0])
        shown = repr(chr(raw[pos])) if 32 <= raw[pos] < 127 else f"byte 0x{raw[pos]:02x}"
        raise InputError(f"{where}: character {shown} at offset {pos} is not a nucleotide letter")
    return ids


def soft_mask(seq: str | bytes) -> np.ndarray:
    """Per-base bool array, True where the base is lowercase (soft-masked repeat)."""
    raw = np.frombuffer(seq.encode("ascii", "replace") if isinstance(seq, str) else seq, dtype=np.uint8)
    return _SOFT_MASKED[raw]


def reverse_complement(ids: np.ndarray) -> np.ndarray:
    """Reverse complement along the last axis (works on numpy arrays of any batch shape)."""
    return COMPLEMENT[ids[..., ::-1]]
