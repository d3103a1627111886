"""`caduceus ism` end to end on a tiny random checkpoint: its LLRs are score-variants' scores."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from caduceus_cli.pipelines.ism import ISM_COLUMNS, ISM_MAX_BASES

WINDOW = 64
rng = np.random.default_rng(11)
CHR1 = "".join(rng.choice(list("ACGT"), 300))
LONG = "".join(rng.choice(list("ACGT"), ISM_MAX_BASES + 50))
VCF_HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=300>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
)


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ism_genome") / "ref.fa"
    path.write_text(f">chr1\n{CHR1}\n>long\n{LONG}\n")
    return path


@pytest.fixture
def model(tiny_checkpoint) -> Path:
    return tiny_checkpoint("ph")


def lines(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


def snv_vcf(folder: Path, first: int, last: int) -> Path:
    """Every single-base change of chr1:first-last (1-based), one record per position."""
    records = "".join(
        f"chr1\t{pos}\t.\t{CHR1[pos - 1]}\t{','.join(b for b in 'ACGT' if b != CHR1[pos - 1])}\t.\t.\t.\n"
        for pos in range(first, last + 1)
    )
    path = folder / "snvs.vcf"
    path.write_text(VCF_HEADER + records)
    return path


@pytest.mark.parametrize(
    ("mode", "score", "first", "last"), [("unmasked", "llr-unmasked", 90, 140), ("masked", "llr", 1, 6)]
)
def test_ism_llrs_and_logits_equal_score_variants_for_the_same_snvs(
    run_cli, tmp_path, genome, model, mode, score, first, last
):
    ism = run_cli(
        "ism",
        genome,
        "-r",
        f"chr1:{first}-{last}",
        "-o",
        "-",
        "--mode",
        mode,
        "-w",
        WINDOW,
        "-m",
        model,
        "-q",
    )
    assert ism.code == 0, ism.err
    vcf = snv_vcf(tmp_path, first, last)
    scored = run_cli(
        "score-variants", vcf, "--fasta", genome, "-s", score, "-O", "t", "-w", WINDOW, "-m", model, "-q"
    )
    assert scored.code == 0, scored.err

    header, *ism_rows = lines(ism.out)
    assert tuple(header) == ISM_COLUMNS
    assert len(ism_rows) == 3 * (last - first + 1)
    variants = {(row[0], row[1], row[3], row[4]): row for row in lines(scored.out)[1:]}
    for chrom, pos, ref, alt, llr, logit_ref, logit_alt in ism_rows:
        row = variants[(chrom, pos, ref, alt)]
        assert (llr, logit_ref, logit_alt) == (row[6], row[7], row[8])  # the same float32 text


def test_table_file_and_png_figure(run_cli, tmp_path, genome, model):
    out, figure = tmp_path / "ism.tsv.gz", tmp_path / "ism.png"
    result = run_cli(
        "ism", genome, "-r", "chr1:10-29", "-o", out, "--plot", figure, "-w", WINDOW, "-m", model, "-q"
    )
    assert result.code == 0, result.err
    assert len(gzip.decompress(out.read_bytes()).decode().splitlines()) == 1 + 3 * 20
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("-r", "chr1:250-301"), 1, "past the end"),
        (("-r", "chr1:20-19"), 1, "before start"),
        (("-r", f"long:1-{ISM_MAX_BASES + 1}"), 1, f"at most {ISM_MAX_BASES:,} bp"),
        (("-r", "chrZ:1-10"), 1, "chrZ"),
        (("-r", "chr1:1-10", "-o", "no/such/folder/out.tsv"), 1, "does not exist"),
        (("-r", "chr1:1-10", "--plot", "no/such/folder/ism.png"), 1, "does not exist"),
        (("-r", "chr1:1-10", "--plot", "ism.pdf"), 1, ".png or .svg"),
        (("-r", "chr1:1-10", "-w", "63"), 2, "even"),
        (("-r", "chr1:1-10", "--mode", "exact"), 2, "--mode"),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code_and_leaves_nothing(
    run_cli, tmp_path, genome, model, monkeypatch, args, code, message
):
    monkeypatch.chdir(tmp_path)
    options = args if "-o" in args else (*args, "-o", "out.tsv")
    result = run_cli("ism", genome, *options, "-m", model, "-q")
    assert result.code == code
    assert message in result.err
    if code == 1:
        assert result.err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
