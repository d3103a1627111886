"""DNA text -> token ids, as each checkpoint's own tokenizer defines them, and reverse complements.

A checkpoint is its weights, its config and its tokenizer: the original Caduceus checkpoints use
the character tokenizer fixed in the original code (`CADUCEUS`), PlantCaduceus uses GPN's DNA
tokenizer, a `tokenizers` BPE vocabulary of single characters ([PAD]=0 [MASK]=1 [UNK]=2 a=3 c=4
g=5 t=6, lowercasing). `read_tokenizer` reads whichever a checkpoint folder holds; every
`Tokenizer` is a 256-entry lookup table built from its rules, so a 131 kbp window costs
microseconds. We never add special tokens.

Text is validated the same way for every tokenizer: anything that is not a letter (`-`, `.`,
digits, spaces) is an input error naming the sequence and offset. Letters other than A, C, G, T
take the id the tokenizer gives them (N for the Caduceus tokenizer, [UNK] for GPN's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from caduceus_cli.errors import CheckpointError, InputError

ACGT = "ACGT"  # the order of the model's nucleotide logits everywhere after the engine

# The original CaduceusTokenizer's vocabulary: [CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4
# [RESERVED]=5 [UNK]=6 A=7 C=8 G=9 T=10 N=11 (the model pads its embedding table to 16).
MASK_ID = 3
A_ID, C_ID, G_ID, T_ID, N_ID = 7, 8, 9, 10, 11
NUCLEOTIDE_IDS = np.array([A_ID, C_ID, G_ID, T_ID])
VOCAB_SIZE = 16
# comp[id] = complement id: A<->T, C<->G, every other id maps to itself.
COMPLEMENT = np.arange(VOCAB_SIZE, dtype=np.int64)
COMPLEMENT[NUCLEOTIDE_IDS] = NUCLEOTIDE_IDS[::-1]

_INVALID = -1
# The letters DNA text may hold: bases, IUPAC ambiguity codes, U and X (a common hard-mask letter).
# The Caduceus tokenizer reads every one but A, C, G, T as N: the original maps them to [UNK]=6, an
# id the published models never saw in training, and N is the closer input.
_NUCLEOTIDE_LETTERS = "ACGTBDHKMNRSUVWXY"

_SOFT_MASKED = np.zeros(256, dtype=bool)
_SOFT_MASKED[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)] = True

# Text complement: bases and IUPAC codes to their complements, case kept, anything else unchanged.
_COMPLEMENT_TEXT = str.maketrans("ACGTRYKMBVDHacgtrykmbvdh", "TGCAYRMKVBHDtgcayrmkvbhd")


@dataclass(frozen=True)
class Tokenizer:
    """How one checkpoint turns DNA text into ids: a lookup table over bytes, and the ids that matter.

    `kind` names the tokenizer ("CaduceusTokenizer" or "tokenizer.json (BPE, characters)"), `source`
    the file it was read from. `base_ids` are the ids of A, C, G, T (the columns `nucleotide_logits`
    keeps); `unknown_id` what N reads as; `mask_id` the [MASK] that masked scores put in place of a base.
    """

    kind: str
    source: str
    vocab_size: int
    base_ids: tuple[int, int, int, int]
    mask_id: int
    unknown_id: int
    pad_id: int | None
    table: np.ndarray = field(repr=False, compare=False)  # (256,) int64: byte -> id, _INVALID for non-letters

    def encode(self, seq: str | bytes, where: str = "sequence") -> np.ndarray:
        """int64 ids of a DNA string; `where` names the input in the error message."""
        raw = np.frombuffer(seq.encode("ascii", "replace") if isinstance(seq, str) else seq, dtype=np.uint8)
        ids = self.table[raw]
        bad = np.flatnonzero(ids == _INVALID)
        if bad.size:
            pos = int(bad[0])
            shown = repr(chr(raw[pos])) if 32 <= raw[pos] < 127 else f"byte 0x{raw[pos]:02x}"
            raise InputError(f"{where}: character {shown} at offset {pos} is not a nucleotide letter")
        return ids

    @property
    def complement(self) -> np.ndarray:
        """comp[id] over ids 0..max: the base ids paired A<->T, C<->G, every other id itself."""
        comp = np.arange(max(self.vocab_size, max(self.base_ids) + 1), dtype=np.int64)
        comp[list(self.base_ids)] = list(reversed(self.base_ids))
        return comp

    def reverse_complement(self, ids: np.ndarray) -> np.ndarray:
        """Reverse complement along the last axis (numpy arrays of any batch shape)."""
        return self.complement[ids[..., ::-1]]

    def columns(self, ids: np.ndarray) -> np.ndarray:
        """Column of each id among A, C, G, T (0-3), or -1 where it is not a base (N, [UNK], [MASK])."""
        columns = np.full(ids.shape, -1, dtype=np.int64)
        for column, token in enumerate(self.base_ids):
            columns[ids == token] = column
        return columns

    def nucleotide_logits(self, logits: Any) -> Any:
        """The A, C, G, T columns of (..., V) logits (numpy or torch), in that order."""
        return logits[..., list(self.base_ids)]

    def describe(self) -> str:
        """One line for `caduceus info`."""
        letters = " ".join(f"{b}={i}" for b, i in zip(ACGT, self.base_ids, strict=True))
        return (
            f"{self.kind}, {self.vocab_size} ids: {letters}, N -> {self.unknown_id}, "
            f"[MASK]={self.mask_id}" + ("" if self.pad_id is None else f", [PAD]={self.pad_id}")
        )

    def check_fits(self, embedding_rows: int, complement_map: dict[int, int] | None, where: str) -> None:
        """Refuse a tokenizer whose ids the model cannot take, or whose base pairs the config contradicts."""
        used = dict(zip(ACGT, self.base_ids, strict=True)) | {"N": self.unknown_id, "[MASK]": self.mask_id}
        for name, token in used.items():
            if not 0 <= token < embedding_rows:
                raise CheckpointError(
                    f"{where}: the tokenizer ({self.source}) gives {name} id {token}, but the model's "
                    f"embedding table has {embedding_rows} rows (vocab_size)"
                )
        for base, token in zip(ACGT, self.base_ids, strict=True):
            partner = self.base_ids[3 - ACGT.index(base)]
            if complement_map is not None and complement_map.get(token, token) != partner:
                raise CheckpointError(
                    f"{where}: key 'complement_map' maps {base} (id {token}) to id "
                    f"{complement_map.get(token, token)}, but the tokenizer ({self.source}) has its "
                    f"complement at id {partner}"
                )


def _caduceus_tokenizer(source: str) -> Tokenizer:
    table = np.full(256, _INVALID, dtype=np.int64)
    for letter in _NUCLEOTIDE_LETTERS:
        table[ord(letter)] = table[ord(letter.lower())] = N_ID
    for letter, token in zip(ACGT, NUCLEOTIDE_IDS, strict=True):
        table[ord(letter)] = table[ord(letter.lower())] = token
    return Tokenizer("CaduceusTokenizer", source, 12, tuple(NUCLEOTIDE_IDS.tolist()), MASK_ID, N_ID, 4, table)


CADUCEUS = _caduceus_tokenizer("the original code's fixed vocabulary")


def soft_mask(seq: str | bytes) -> np.ndarray:
    """Per-base bool array, True where the base is lowercase (soft-masked repeat)."""
    raw = np.frombuffer(seq.encode("ascii", "replace") if isinstance(seq, str) else seq, dtype=np.uint8)
    return _SOFT_MASKED[raw]


def reverse_complement_text(seq: str) -> str:
    """The reverse complement of DNA text, case kept (so soft-masking is kept too)."""
    return seq.translate(_COMPLEMENT_TEXT)[::-1]


# ---------------------------------------------------------------------------------------------
# reading a checkpoint's tokenizer files

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_IDENTITY_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD"}  # no effect on ASCII letters
_HARMLESS_PRE_TOKENIZERS = {"Whitespace", "WhitespaceSplit"}  # DNA text holds no whitespace or punctuation


def read_tokenizer(folder: Path) -> Tokenizer:
    """The tokenizer a checkpoint folder defines.

    `tokenizer.json` (a `tokenizers` file) when present; else `tokenizer_config.json` naming the
    original CaduceusTokenizer, or naming no tokenizer class at all (what the original code and
    `save_checkpoint` write): the Caduceus character tokenizer. Anything else is refused naming the
    file and the reason.
    """
    config = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
    if (folder / "tokenizer.json").is_file():
        specials = _read_json(folder / "special_tokens_map.json") if (folder / "special_tokens_map.json").is_file() else {}
        return _from_tokenizer_json(folder / "tokenizer.json", {**specials, **config})
    tokenizer_class = config.get("tokenizer_class")
    if tokenizer_class == "CaduceusTokenizer":
        return _caduceus_tokenizer("tokenizer_config.json (tokenizer_class CaduceusTokenizer)")
    if tokenizer_class is None:
        why = "tokenizer_config.json names none" if config else "no tokenizer files"
        return _caduceus_tokenizer(f"the original code's fixed vocabulary ({why})")
    raise CheckpointError(
        f"{folder / 'tokenizer_config.json'}: tokenizer_class {tokenizer_class!r} without a tokenizer.json; "
        "caduceus reads the CaduceusTokenizer or a character-level tokenizer.json"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read ({err})") from err
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return raw


def _special(value: Any) -> str | None:
    """A special token as tokenizer_config.json / special_tokens_map.json write it: text or {"content": text}."""
    return value.get("content") if isinstance(value, dict) else value


def _from_tokenizer_json(path: Path, specials: dict[str, Any]) -> Tokenizer:
    """A `tokenizers` file whose model is a BPE vocabulary of single characters with no merges (GPN's DNA
    tokenizer): every letter is normalised, then looked up, else [UNK]. What would change the number
    of tokens (merges, fused unknowns, byte fallback) or the letters (another normaliser) is refused."""
    raw = _read_json(path)

    def refuse(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: {why}; caduceus reads character-level DNA tokenizers only")

    model = raw.get("model") or {}
    if model.get("type") != "BPE":
        raise refuse(f"model type {model.get('type')!r} is not a BPE vocabulary of characters")
    if model.get("merges"):
        raise refuse(f"{len(model['merges'])} BPE merges make tokens of several bases")
    if model.get("fuse_unk") or model.get("byte_fallback"):
        raise refuse("fuse_unk or byte_fallback change the number of tokens")
    lowercase = _lowercases(raw.get("normalizer"), refuse)
    _check_pre_tokenizer(raw.get("pre_tokenizer"), refuse)
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    for added in raw.get("added_tokens") or []:
        vocab.setdefault(added["content"], added["id"])
    unknown = model.get("unk_token")
    if unknown not in vocab:
        raise refuse("no unknown token: N and other letters could not be encoded")
    mask = _special(specials.get("mask_token"))
    if mask not in vocab:
        raise refuse("no [MASK] token (mask_token in tokenizer_config.json or special_tokens_map.json)")
    pad = _special(specials.get("pad_token"))
    table = np.full(256, _INVALID, dtype=np.int64)
    for letter in _NUCLEOTIDE_LETTERS + _NUCLEOTIDE_LETTERS.lower():
        table[ord(letter)] = vocab.get(letter.lower() if lowercase else letter, vocab[unknown])
    base_ids = tuple(int(table[ord(b)]) for b in ACGT)
    for base, token in zip(ACGT, base_ids, strict=True):
        if token == vocab[unknown] or table[ord(base.lower())] != token:
            raise refuse(f"base {base} (either case) has no id of its own")
    size = max(vocab.values()) + 1
    kind = "tokenizer.json (BPE of single characters" + (", lowercasing)" if lowercase else ")")
    return Tokenizer(kind, path.name, size, base_ids, vocab[mask], vocab[unknown], vocab.get(pad), table)  # type: ignore[arg-type]


def _lowercases(normalizer: dict | None, refuse) -> bool:
    """Whether the normaliser lowercases; one that does anything else to ASCII letters is refused."""
    if normalizer is None:
        return False
    kind = normalizer.get("type")
    if kind == "Sequence":
        parts = [_lowercases(part, refuse) for part in normalizer.get("normalizers", [])]  # each checked
        return any(parts)
    if kind == "Lowercase":
        return True
    if kind in _IDENTITY_NORMALIZERS:
        return False
    raise refuse(f"normalizer {kind!r} may change the letters")


def _check_pre_tokenizer(pre: dict | None, refuse) -> None:
    if pre is None:
        return
    kind = pre.get("type")
    if kind == "Sequence":
        for part in pre.get("pretokenizers", []):
            _check_pre_tokenizer(part, refuse)
    elif kind not in _HARMLESS_PRE_TOKENIZERS:
        raise refuse(f"pre_tokenizer {kind!r} may change the letters")
