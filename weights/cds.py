"""Protein-coding transcripts from the TAIR10 GFF and the effect of SNVs in their coding sequence.

One transcript per gene: the TAIR representative model (orig_transcript_id ending in ".1"), else
the first listed. A transcript is kept only if its spliced CDS, read from the genome, is a whole
number of codons starting with ATG and ending with the only stop codon: this checks the coordinate
and strand handling against the annotation.

Coordinates are 0-based, half-open; `positions` lists the genome positions of the coding bases in
transcript (5' to 3') order, so a minus-strand transcript's positions descend.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caduceus_cli.tokens import A_ID

BASES = "ACGT"
_COMPLEMENT_INDEX = np.array([3, 2, 1, 0])  # A C G T -> T G C A as 0..3 indices
# Standard genetic code, codons indexed 16 * first + 4 * second + third with A=0 C=1 G=2 T=3.
GENETIC_CODE = "KNKNTTTTRSRSIIMIQHQHPPPPRRRRLLLLEDEDAAAAGGGGVVVV*Y*YSSSS*CWCLFLF"
EFFECTS = ("synonymous", "missense", "nonsense", "stop_lost", "start_lost")


@dataclass
class CodingTranscript:
    locus: str  # e.g. AT1G59750
    name: str  # gene symbol, or the locus when it has none
    transcript: str
    strand: str
    segments: list[tuple[int, int]]  # CDS pieces, ascending genome order

    @property
    def start(self) -> int:
        return self.segments[0][0]

    @property
    def end(self) -> int:
        return self.segments[-1][1]

    @property
    def positions(self) -> np.ndarray:
        forward = np.concatenate([np.arange(s, e) for s, e in self.segments])
        return forward if self.strand == "+" else forward[::-1]

    def coding_bases(self, genome_ids: np.ndarray) -> np.ndarray:
        """The spliced CDS as 0..3 (A C G T) on the transcript's strand; -1 for N."""
        bases = genome_ids[self.positions].astype(np.int64) - A_ID
        bases = np.where((bases >= 0) & (bases < 4), bases, -1)
        if self.strand == "-":
            bases = np.where(bases >= 0, _COMPLEMENT_INDEX[bases], -1)
        return bases


def translate(bases: np.ndarray) -> str:
    codons = bases[: len(bases) // 3 * 3].reshape(-1, 3)
    return "".join(GENETIC_CODE[16 * a + 4 * b + c] if min(a, b, c) >= 0 else "X" for a, b, c in codons)


def _attributes(column: str) -> dict[str, str]:
    return dict(field.split("=", 1) for field in column.strip().split(";") if "=" in field)


def read_coding_transcripts(gff: Path, contig: str, start: int, end: int) -> list[CodingTranscript]:
    """Representative protein-coding transcripts of `contig` whose CDS lies within [start, end), by start."""
    mrna_gene: dict[str, str] = {}
    mrna_order: dict[str, list[str]] = {}
    representative: dict[str, str] = {}
    cds: dict[str, list[tuple[int, int]]] = {}
    strands: dict[str, str] = {}
    names: dict[str, tuple[str, str]] = {}
    with gzip.open(gff, "rt") as handle:
        for line in handle:
            fields = line.split("\t")
            if line.startswith("#") or len(fields) < 9 or fields[0] != contig:
                continue
            kind, attrs = fields[2], _attributes(fields[8])
            if kind == "mRNA":
                gene = attrs["Parent"]
                mrna_gene[attrs["ID"]] = gene
                mrna_order.setdefault(gene, []).append(attrs["ID"])
                if attrs.get("orig_transcript_id", "").endswith(".1"):
                    representative[gene] = attrs["ID"]
            elif kind == "CDS" and attrs.get("Parent") in mrna_gene:
                lo, hi = int(fields[3]) - 1, int(fields[4])
                if start <= lo and hi <= end:
                    cds.setdefault(attrs["Parent"], []).append((lo, hi))
                    strands[attrs["Parent"]] = fields[6]
                    locus = attrs.get("locus_tag", attrs["Parent"])
                    names[attrs["Parent"]] = (locus, attrs.get("gene", locus))
    transcripts = []
    for gene, mrnas in mrna_order.items():
        chosen = representative.get(gene, mrnas[0])
        if chosen in cds:
            locus, name = names[chosen]
            transcripts.append(
                CodingTranscript(
                    locus, name, chosen.removeprefix("rna-"), strands[chosen], sorted(cds[chosen])
                )
            )
    return sorted(transcripts, key=lambda t: t.start)


def is_clean(transcript: CodingTranscript, genome_ids: np.ndarray) -> bool:
    """Whole codons, ATG first, a stop last and nowhere else, no N."""
    bases = transcript.coding_bases(genome_ids)
    if len(bases) % 3 or len(bases) < 6 or (bases < 0).any():
        return False
    protein = translate(bases)
    return protein[0] == "M" and protein[-1] == "*" and "*" not in protein[:-1]


def snv_effect(transcript: CodingTranscript, genome_ids: np.ndarray, position: int, alt: str) -> str:
    """Effect of changing the genome's + strand base at `position` (a coding base) to `alt`."""
    index = int(np.flatnonzero(transcript.positions == position)[0])
    bases = transcript.coding_bases(genome_ids)
    codon = bases[index // 3 * 3 : index // 3 * 3 + 3].copy()
    alt_index = BASES.index(alt)
    codon[index % 3] = _COMPLEMENT_INDEX[alt_index] if transcript.strand == "-" else alt_index
    ref_aa, alt_aa = translate(bases[index // 3 * 3 : index // 3 * 3 + 3]), translate(codon)
    if ref_aa == alt_aa:
        return "synonymous"
    if ref_aa == "*":
        return "stop_lost"
    if alt_aa == "*":
        return "nonsense"
    if index < 3:
        return "start_lost"
    return "missense"


@dataclass
class Snv:
    pos: int  # 0-based, in the coordinates of the VCF being written
    ref: str
    alt: str
    effect: str
    gene: str


def write_vcf(path: Path, contig: str, contig_length: int, snvs: list[Snv], header_lines: list[str]) -> None:
    """A sorted VCFv4.2 of SNVs with INFO EFFECT and GENE."""
    with open(path, "w") as out:
        out.write("##fileformat=VCFv4.2\n")
        for line in header_lines:
            out.write(f"##{line}\n")
        out.write(f"##contig=<ID={contig},length={contig_length}>\n")
        out.write(
            f'##INFO=<ID=EFFECT,Number=1,Type=String,Description="Effect on the protein: {"|".join(EFFECTS)}">\n'
        )
        out.write('##INFO=<ID=GENE,Number=1,Type=String,Description="TAIR locus of the coding transcript">\n')
        out.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for snv in sorted(snvs, key=lambda s: (s.pos, s.alt)):
            out.write(
                f"{contig}\t{snv.pos + 1}\t.\t{snv.ref}\t{snv.alt}\t.\t.\tEFFECT={snv.effect};GENE={snv.gene}\n"
            )
