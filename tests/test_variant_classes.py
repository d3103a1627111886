"""score-variants on every allele class, end to end: the properties a geneticist ranking a real VCF relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam
import pytest

from caduceus_cli.model.load import default_model_path

WINDOW = 64
rng = np.random.default_rng(11)
LEFT, RIGHT = "".join(rng.choice(list("ACGT"), 150)), "".join(rng.choice(list("ACGT"), 150))
# a T run at 150..157 and a CA repeat at 160..169 (0-based), in random sequence
GENOME = LEFT + "GTTTTTTTTG" + "CACACACACA" + RIGHT
T_RUN = range(151, 159)  # the eight Ts
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def reverse_complement(text: str) -> str:
    return text.translate(COMPLEMENT)[::-1]


def write_fasta(path: Path, sequence: str) -> Path:
    path.write_text(">c\n" + "".join(sequence[i : i + 60] + "\n" for i in range(0, len(sequence), 60)))
    return path


def write_vcf(path: Path, length: int, records: list[tuple[int, str, str]]) -> Path:
    """`records`: (0-based position, REF, ALT), written in the order given."""
    header = f"##fileformat=VCFv4.2\n##contig=<ID=c,length={length}>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    path.write_text(header + "".join(f"c\t{p + 1}\t.\t{ref}\t{alt}\t.\t.\t.\n" for p, ref, alt in records))
    return path


def scores(run_cli, tmp_path: Path, model, fasta: Path, records, *options, name="out") -> list[dict[str, float]]:
    """Each record's first-ALT llr, emb-cos and class, from a BCF (float32 kept exactly)."""
    vcf = write_vcf(tmp_path / f"{name}.vcf", len(fasta.read_text()), records)
    out = tmp_path / f"{name}.bcf"
    result = run_cli("score-variants", vcf, "--fasta", fasta, "-m", model, "-s", "llr", "-s", "emb-cos",
                     "-o", out, "-q", *options)  # fmt: skip
    assert result.code == 0, result.err
    with pysam.VariantFile(str(out)) as scored:
        return [
            {"llr": r.info["CADUCEUS_LLR"][0], "emb": r.info["CADUCEUS_EMB_COS"][0], "class": r.info["CADUCEUS_CLASS"][0]}
            for r in scored
        ]


@pytest.fixture
def genome(tmp_path) -> Path:
    return write_fasta(tmp_path / "g.fa", GENOME)


def test_alt_equal_to_ref_scores_zero(run_cli, tmp_path, genome, tiny_checkpoint):
    got = scores(run_cli, tmp_path, tiny_checkpoint(), genome, [(20, GENOME[20], GENOME[20].lower())],
                 "-w", WINDOW)  # fmt: skip
    assert got == [{"llr": 0.0, "emb": 0.0, "class": "none"}]


def test_every_representation_of_an_indel_in_a_repeat_scores_the_same(run_cli, tmp_path, genome, tiny_checkpoint):
    deletions = [(p - 1, GENOME[p - 1 : p + 1], GENOME[p - 1]) for p in T_RUN]  # padding base on the left
    deletions += [(p, GENOME[p : p + 2], GENOME[p + 1]) for p in T_RUN]  # on the right
    insertions = [(p - 1, GENOME[p - 1], GENOME[p - 1] + "T") for p in [*T_RUN, T_RUN[-1] + 1]]
    repeat = [(p - 1, GENOME[p - 1 : p + 2], GENOME[p - 1]) for p in range(160, 168)]  # CA or AC deleted
    for name, group in (("deletions", deletions), ("insertions", insertions), ("repeat", repeat)):
        got = scores(run_cli, tmp_path, tiny_checkpoint(), genome, group, "-w", WINDOW, name=name)
        assert all(g == got[0] for g in got), got
        assert got[0]["class"] in ("del", "ins") and got[0]["llr"] != 0.0


def test_a_deletion_and_the_insertion_that_undoes_it_score_opposite(run_cli, tmp_path, genome, tiny_checkpoint):
    for start, length in ((100, 1), (60, 7), (154, 2)):  # unique sequence, and inside the T run
        deleted = GENOME[start : start + length]
        without = GENOME[:start] + GENOME[start + length :]
        shorter = write_fasta(tmp_path / f"without{start}.fa", without)
        pad = GENOME[start - 1]
        (deletion,) = scores(run_cli, tmp_path, tiny_checkpoint(), genome, [(start - 1, pad + deleted, pad)],
                             "-w", WINDOW, name=f"del{start}")  # fmt: skip
        (insertion,) = scores(run_cli, tmp_path, tiny_checkpoint(), shorter, [(start - 1, pad, pad + deleted)],
                              "-w", WINDOW, name=f"ins{start}")  # fmt: skip
        assert (deletion["class"], insertion["class"]) == ("del", "ins")
        assert insertion["llr"] == pytest.approx(-deletion["llr"], abs=1e-5)
        assert deletion["emb"] == pytest.approx(insertion["emb"], abs=1e-6)  # a distance: symmetric


def test_a_padded_substitution_scores_as_the_snv_it_is(run_cli, tmp_path, genome, tiny_checkpoint):
    alt = "A" if GENOME[41] != "A" else "C"
    padded, snv = scores(
        run_cli, tmp_path, tiny_checkpoint(), genome,
        [(40, GENOME[40:43], GENOME[40] + alt + GENOME[42]), (41, GENOME[41], alt)], "-w", WINDOW,
    )  # fmt: skip
    assert padded == snv and snv["class"] == "snv"


def test_changes_longer_than_half_the_window_are_flagged(run_cli, tmp_path, genome, tiny_checkpoint):
    vcf = write_vcf(tmp_path / "v.vcf", len(GENOME), [(50, GENOME[50:84], GENOME[50]), (50, GENOME[50:83], GENOME[50])])
    out = tmp_path / "out.vcf"
    result = run_cli("score-variants", vcf, "--fasta", genome, "-m", tiny_checkpoint(), "-w", WINDOW, "-o", out, "-q")
    assert result.code == 0, result.err
    with pysam.VariantFile(str(out)) as scored:
        first, second = list(scored)
    assert first.info["CADUCEUS_FLAG"] == ("too_long",) and first.info["CADUCEUS_LLR"] == (None,)
    assert "CADUCEUS_FLAG" not in second.info and second.info["CADUCEUS_CLASS"] == ("del",)  # 32 = W/2 bases


def test_shards_and_a_single_run_agree_on_every_class(run_cli, tmp_path, genome, tiny_checkpoint):
    records = [(20, GENOME[20], "A" if GENOME[20] != "A" else "C"), (40, GENOME[40:42], "".join(
        "A" if b != "A" else "C" for b in GENOME[40:42])), (100, GENOME[100], GENOME[100] + "GGA"),
        (154, GENOME[154:157], GENOME[154]), (200, GENOME[200:203], "TT" if GENOME[200] != "T" else "GG")]  # fmt: skip
    vcf = write_vcf(tmp_path / "v.vcf", len(GENOME), records)
    model = tiny_checkpoint()
    single = tmp_path / "single.vcf"
    assert run_cli("score-variants", vcf, "--fasta", genome, "-m", model, "-w", WINDOW, "-s", "llr", "-s", "emb-l2",
                   "-o", single, "-q").code == 0  # fmt: skip
    parts = []
    for shard in (1, 2, 3):
        part = tmp_path / f"part{shard}.vcf"
        assert run_cli("score-variants", vcf, "--fasta", genome, "-m", model, "-w", WINDOW, "-s", "llr", "-s", "emb-l2",
                       "--shard", f"{shard}/3", "-o", part, "-q").code == 0  # fmt: skip
        parts += [line for line in part.read_text().splitlines() if not line.startswith("#")]
    lines = [line for line in single.read_text().splitlines() if not line.startswith("#")]
    assert parts == lines
    assert [line.split("CADUCEUS_CLASS=")[1].split(";")[0] for line in lines] == ["snv", "mnv", "ins", "del", "complex"]


# --- strand symmetry, measured with the shipped model on real DNA ------------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example.fa"
# Measured with the shipped model at W = 256 on these variants (max 0.010 SNV, 0 MNV, 0.016 insertions,
# 0.023 deletions, 0.009 complex), with a margin; the README has W = 1,024 over more variants.
RC_BOUNDS = {"snv": 0.02, "mnv": 0.02, "ins": 0.05, "del": 0.05, "complex": 0.05}
RC_WINDOW = 256


def test_a_variant_and_its_reverse_complement_score_alike_on_the_two_strands(run_cli, tmp_path):
    with pysam.FastaFile(str(EXAMPLE)) as fasta:
        sequence = fasta.fetch(fasta.references[0]).upper()[:20_000]
    picker = np.random.default_rng(5)
    records = []
    for p0 in picker.choice(np.arange(2_000, 18_000), size=6, replace=False):
        ref = sequence[p0 : p0 + 3]
        other = "".join("A" if b != "A" else "C" for b in ref)
        records += [(p0, ref[0], other[0]), (p0, ref[:2], other[:2]), (p0, ref[0], ref[0] + "GAT"),
                    (p0, ref, ref[0]), (p0, ref, other[:2])]  # fmt: skip
    records.sort()
    forward = write_fasta(tmp_path / "forward.fa", sequence)
    backward = write_fasta(tmp_path / "backward.fa", reverse_complement(sequence))
    mirrored = [(len(sequence) - p - len(ref), reverse_complement(ref), reverse_complement(alt)) for p, ref, alt in records]
    model = default_model_path()
    on_forward = scores(run_cli, tmp_path, model, forward, records, "-w", RC_WINDOW, name="forward")
    on_backward = scores(run_cli, tmp_path, model, backward, mirrored, "-w", RC_WINDOW, name="backward")
    for a, b in zip(on_forward, on_backward, strict=True):
        assert a["class"] == b["class"]
        assert abs(a["llr"] - b["llr"]) <= RC_BOUNDS[a["class"]], (a, b)
        assert abs(a["emb"] - b["emb"]) <= 1e-4, (a, b)
