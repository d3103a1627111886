"""Held-out evaluation of a trained model: masked-base prediction against the k-mer baseline, and
zero-shot scoring of coding SNVs with `caduceus score-variants`.

    python -m weights.evaluate --model weights/caduceus-ph-tair10

1. Masked bases. The held-out interval is masked once (seed 0; 15%, 80/10/10) and tiled into
   windows of the model's training length; `--max-windows` evenly spaced windows are scored (all
   when 0). Model probabilities are a softmax over the A/C/G/T logits, for the forward strand alone
   and conjoined with the reverse-complement pass (what the tool uses for PH models). The k-mer
   baseline (weights/kmer_baseline.py) is scored on exactly the same positions; its best k is
   chosen on them, which favours the baseline.
2. Zero-shot. All 9 SNVs at `--codons` codons drawn at random (seed 0) from the internal codons of
   the held-out protein-coding genes (TAIR representative transcripts), labelled from the GFF and
   the genetic code, are written to a VCF in TAIR10 chr1 coordinates and scored by the CLI
   (masked LLR = log P(alt) - log P(ref) at the masked variant position). AUROC of -LLR for
   missense + nonsense against synonymous, with the same AUROC for the k-mer baseline's LLR.

Work files (the chr1 FASTA, the VCFs) go to --work (default: a temporary folder); they are not
part of the repository.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pysam
import torch

from caduceus_cli.model.load import load_model
from caduceus_cli.tokens import A_ID, NUCLEOTIDE_IDS, tokenize
from weights.cds import BASES, Snv, is_clean, read_coding_transcripts, snv_effect, write_vcf
from weights.data import (
    ATHALIANA_FASTA,
    ATHALIANA_GFF,
    CHR1,
    HELDOUT,
    IGNORE,
    data_file,
    heldout_masked,
    read_fasta_text,
    tile,
    training_segments,
)
from weights.kmer_baseline import accuracy_and_cross_entropy, all_counts, predict


def model_heldout_probs(model, length: int, max_windows: int, batch: int) -> dict[str, np.ndarray]:
    """Scored held-out positions and the model's (n, 4) A/C/G/T probabilities there, both strand modes."""
    inputs, labels = heldout_masked()
    tiles = tile(len(inputs), length)
    if 0 < max_windows < len(tiles):
        tiles = [tiles[i] for i in np.linspace(0, len(tiles) - 1, max_windows).round().astype(int)]
    positions, forward, conjoined = [], [], []
    nucleotides = torch.as_tensor(NUCLEOTIDE_IDS)
    for first in range(0, len(tiles), batch):
        group = tiles[first : first + batch]
        ids = torch.from_numpy(np.stack([inputs[s : s + length] for s, _ in group]))
        with torch.no_grad():
            both = model(torch.cat([ids, model.reverse_complement(ids)])).logits
        fwd = both[: len(group)]
        rc_back = both[len(group) :].flip(1)[..., model.complement]  # RC pass in forward coordinates
        for row, (start, first_new) in enumerate(group):
            scored = np.flatnonzero(labels[start + first_new : start + length] != IGNORE) + first_new
            positions.append(start + scored)
            forward.append(torch.softmax(fwd[row, scored][:, nucleotides], -1).numpy())
            conjoined.append(torch.softmax((0.5 * (fwd + rc_back))[row, scored][:, nucleotides], -1).numpy())
    positions = np.concatenate(positions)
    return {
        "positions": positions,
        "bases": labels[positions] - A_ID,
        "forward": np.concatenate(forward),
        "conjoined": np.concatenate(conjoined),
    }


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half): the
    Mann-Whitney U statistic from average ranks."""
    scores = np.concatenate([positives, negatives])
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based rank of each distinct value
    ranks = average_rank[inverse]
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def codon_snvs(genome_ids: np.ndarray, text: bytes, n_codons: int, seed: int = 0) -> list[Snv]:
    """All 9 SNVs at n_codons random internal codons of the clean held-out coding transcripts."""
    transcripts = [
        t
        for t in read_coding_transcripts(data_file(ATHALIANA_GFF), CHR1, HELDOUT.start, HELDOUT.end)
        if is_clean(t, genome_ids)
    ]
    codons = [(t, c) for t in transcripts for c in range(1, len(t.positions) // 3 - 1)]
    rng = np.random.default_rng(seed)
    snvs: dict[tuple[int, str], Snv] = {}  # overlapping genes: one record per (position, alt)
    for i in rng.choice(len(codons), n_codons, replace=False):
        transcript, codon = codons[i]
        for pos in transcript.positions[3 * codon : 3 * codon + 3]:
            ref = chr(text[pos]).upper()
            for alt in BASES:
                if alt != ref:
                    effect = snv_effect(transcript, genome_ids, int(pos), alt)
                    snvs.setdefault((int(pos), alt), Snv(int(pos), ref, alt, effect, transcript.locus))
    return list(snvs.values())


def score_with_cli(model: str, snvs: list[Snv], text: bytes, work: Path, window: int) -> np.ndarray:
    """LLR of every SNV (in list order) from `caduceus score-variants`."""
    fasta = work / "tair10_chr1.fa"
    if not fasta.exists():
        fasta.write_bytes(b">" + CHR1.encode() + b"\n" + text + b"\n")
    vcf, scored = work / "heldout_cds_snvs.vcf", work / "heldout_cds_snvs.scored.vcf"
    write_vcf(vcf, CHR1, len(text), snvs, ["source=weights/evaluate.py"])
    command = [_caduceus_executable(), "score-variants", str(vcf), "--fasta", str(fasta)]
    command += ["--model", model, "--window", str(window), "--output", str(scored), "--force", "--quiet"]
    print("running:", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    llr = {}
    with pysam.VariantFile(str(scored)) as records:
        for record in records:
            llr[(record.pos - 1, record.alts[0])] = float(record.info["CADUCEUS_LLR"][0])
    return np.array([llr[(s.pos, s.alt)] for s in snvs])


def _caduceus_executable() -> str:
    """The `caduceus` command of this Python environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name("caduceus")
    found = str(beside) if beside.exists() else shutil.which("caduceus")
    if found is None:
        raise SystemExit("the caduceus command is not installed: pip install -e . first")
    return found


def kmer_llr(tables: list[np.ndarray], k: int, heldout_ids: np.ndarray, snvs: list[Snv]) -> np.ndarray:
    """log p(alt) - log p(ref) of the +-k context model at each SNV (chr1 positions inside HELDOUT)."""
    positions = np.array([s.pos for s in snvs]) - HELDOUT.start
    probs = predict(tables[: k + 1], heldout_ids, positions)[k]
    rows = np.arange(len(snvs))
    return np.log(
        probs[rows, [BASES.index(s.alt) for s in snvs]] / probs[rows, [BASES.index(s.ref) for s in snvs]]
    )


def separation(scores: np.ndarray, snvs: list[Snv]) -> dict[str, float]:
    """AUROC of -score: damaging classes against synonymous."""
    effect = np.array([s.effect for s in snvs])
    synonymous = -scores[effect == "synonymous"]
    return {
        "missense+nonsense": auroc(-scores[np.isin(effect, ["missense", "nonsense"])], synonymous),
        "missense": auroc(-scores[effect == "missense"], synonymous),
        "nonsense": auroc(-scores[effect == "nonsense"], synonymous),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(Path(__file__).resolve().parent / "caduceus-ph-tair10"))
    p.add_argument("--max-windows", type=int, default=200, help="held-out windows to score (0: all)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--codons", type=int, default=120, help="codons whose 9 SNVs are scored zero-shot")
    p.add_argument(
        "--window", type=int, default=None, help="score-variants window (default: training length)"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=None, help="folder for the chr1 FASTA and VCFs")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model)
    length = model.default_window or 1024
    print(
        f"model {args.model}: d_model {model.config.d_model}, n_layer {model.config.n_layer}, window {length}"
    )
    found = model_heldout_probs(model, length, args.max_windows, args.batch_size)
    tables = all_counts(training_segments())
    text = read_fasta_text(data_file(ATHALIANA_FASTA))[CHR1]
    chr1_ids = tokenize(text, where=ATHALIANA_FASTA)
    heldout_ids = chr1_ids[HELDOUT.start : HELDOUT.end]
    kmer = predict(tables, heldout_ids, found["positions"])
    kmer_scores = [accuracy_and_cross_entropy(probs, found["bases"]) for probs in kmer]
    best_k = int(np.argmax([accuracy for accuracy, _ in kmer_scores]))
    print(f"\nheld-out masked bases scored: {len(found['positions'])}")
    print("| predictor | accuracy | cross-entropy (nats, 4-way) |\n| --- | --- | --- |")
    for name, probs in (
        ("model, forward strand", found["forward"]),
        ("model, RC-conjoined", found["conjoined"]),
    ):
        accuracy, cross_entropy = accuracy_and_cross_entropy(probs, found["bases"])
        print(f"| {name} | {accuracy:.4f} | {cross_entropy:.4f} |")
    for k, (accuracy, cross_entropy) in enumerate(kmer_scores):
        print(f"| k-mer, +-{k}{' (best)' if k == best_k else ''} | {accuracy:.4f} | {cross_entropy:.4f} |")

    work = args.work or Path(tempfile.mkdtemp(prefix="caduceus-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    snvs = codon_snvs(chr1_ids, text, args.codons)
    counts = {e: sum(s.effect == e for s in snvs) for e in sorted({s.effect for s in snvs})}
    print(f"\nzero-shot: {len(snvs)} SNVs at {args.codons} held-out codons: {counts}")
    llr = score_with_cli(args.model, snvs, text, work, args.window or length)
    print(
        "| scorer | AUROC missense+nonsense vs synonymous | missense | nonsense |\n| --- | --- | --- | --- |"
    )
    scorers = {
        "model LLR (score-variants)": llr,
        f"k-mer +-{best_k} LLR": kmer_llr(tables, best_k, heldout_ids, snvs),
    }
    for name, scores in scorers.items():
        result = separation(scores, snvs)
        print(
            f"| {name} | {result['missense+nonsense']:.4f} | {result['missense']:.4f} | {result['nonsense']:.4f} |"
        )
    print(f"\nwork files in {work}")


if __name__ == "__main__":
    main()
