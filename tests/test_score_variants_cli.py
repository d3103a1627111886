"""`caduceus score-variants` end to end on tiny random PH and PS checkpoints."""

from __future__ import annotations

import collections
import contextlib
import gzip
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pysam
import pytest

from caduceus_cli.engine import Engine, Window
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.vcf import HtslibMessages, VcfWriter, add_scoring_header, open_vcf
from caduceus_cli.io.vcf_info import info_fields
from caduceus_cli.model.identity import ModelIdentity
from caduceus_cli.model.load import load_model
from caduceus_cli.pipelines import variants as variants_pipeline
from caduceus_cli.scoring import plan as score_plan
from caduceus_cli.scoring.geometry import unmasked_tile
from caduceus_cli.scoring.plan import with_base
from caduceus_cli.scoring.scores import COLUMN
from caduceus_cli.scoring.settings import Settings, default_window
from caduceus_cli.tokens import CADUCEUS

WINDOW = 64
FLANK = 8
rng = np.random.default_rng(7)
CHR1 = "".join(rng.choice(list("ACGTacgt"), 300))
CHR2 = "".join(rng.choice(list("ACGT"), 100))
HEADER = (
    "##fileformat=VCFv4.2\n"
    "##contig=<ID=1,length=300>\n##contig=<ID=2,length=100>\n##contig=<ID=chrUn,length=50>\n"
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
)


def other_bases(base: str) -> str:
    return ",".join(b for b in "ACGT" if b != base.upper())


def line(chrom: str, pos: int, ref: str, alt: str) -> str:
    return f"{chrom}\t{pos}\t.\t{ref.upper()}\t{alt.upper()}\t30\tPASS\tDP={pos}\n"


# 1-based positions 1 and 300 are the contig's two ends; the VCF says '1' where the FASTA says 'chr1'
EDGE_AND_MIDDLE = [line("1", pos, CHR1[pos - 1], other_bases(CHR1[pos - 1])) for pos in (1, 150, 151, 300)]
TRICKY = [
    line("1", 10, CHR1[9], other_bases(CHR1[9])),  # multi-allelic SNV
    line("1", 20, CHR1[19:22], CHR1[19]),  # deletion
    line("1", 30, CHR1[29], "<DEL>"),  # symbolic
    line("1", 40, "N" if CHR1[39].upper() != "N" else "A", "C"),  # REF mismatch
    line("1", 60, CHR1[59:61], CHR1[59] + other_bases(CHR1[60])[0] + "," + CHR1[59]),  # padded SNV + indel
    line("1", 70, CHR1[69], CHR1[69]),  # ALT equal to REF
    line("2", 50, CHR2[49], other_bases(CHR2[49])[:1]),
    line("chrUn", 5, "A", "G"),  # contig not in the FASTA
]
TRICKY_FLAGS = [
    None,
    None,  # a deletion: scored
    ("symbolic",),
    ("ref_mismatch",),
    None,  # a padded SNV and a deletion: both scored
    None,  # ALT equal to REF: scores 0
    None,
    ("contig_missing",),
]
TRICKY_CLASSES = [
    ("snv",) * 3, ("del",), (".",), (".",), ("snv", "del"), ("none",), ("snv",), (".",)
]  # fmt: skip


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("genome") / "ref.fa"
    text = "".join(
        f">{name}\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
        for name, seq in (("chr1", CHR1), ("chr2", CHR2))
    )
    path.write_text(text)
    return path


def write_vcf(folder: Path, lines: list[str], name: str = "in.vcf") -> Path:
    path = folder / name
    path.write_text(HEADER + "".join(lines))
    return path


@pytest.fixture
def run(run_cli):
    """`caduceus score-variants -q --window 64 ARGS`."""
    return lambda *args: run_cli("score-variants", "-q", "--window", WINDOW, *args)


def read_records(path: Path) -> list[pysam.VariantRecord]:
    with pysam.VariantFile(str(path)) as vcf:
        return [record.copy() for record in vcf]


def data_lines(path: Path) -> list[str]:
    """Records and header, without the one provenance line that names the command."""
    with pysam.VariantFile(str(path)) as vcf:
        header = [h for h in str(vcf.header).splitlines() if not h.startswith("##caduceus_command")]
        return header + [str(record) for record in vcf]


def reference_ids(sequence: str, start: int) -> np.ndarray:
    """Ids of sequence[start:start + WINDOW] with N outside the contig, built without the Fasta class."""
    padded = "N" * WINDOW + sequence + "N" * WINDOW
    return CADUCEUS.encode(padded[start + WINDOW : start + 2 * WINDOW])


def test_llr_scores_equal_the_engines_conjoined_logits_at_edges_and_middle(run, tmp_path, genome, checkpoint):
    vcf = write_vcf(tmp_path, EDGE_AND_MIDDLE)
    out = tmp_path / "out.bcf"  # BCF keeps float32 exactly
    scores = ("llr", "llr-unmasked", "emb-cos", "emb-l2")
    result = run(vcf, "--fasta", genome, "--model", checkpoint, "-o", out, "--emb-flank", FLANK, "--probs",
                 *[arg for s in scores for arg in ("-s", s)])  # fmt: skip
    assert result.code == 0, result.err

    engine = Engine(load_model(checkpoint))

    def logits(ids):
        return next(iter(engine.map([Window(ids, None)], head="logits")))[1]

    def mean_embedding(ids):
        rows = slice(WINDOW // 2 - FLANK, WINDOW // 2 + FLANK + 1)
        return next(iter(engine.map([Window(ids, None, rows)], head="embed")))[1].mean(0)

    for record in read_records(out):
        p0 = record.start
        ref_ids = reference_ids(CHR1, p0 - WINDOW // 2)
        masked_logits = logits(with_base(ref_ids, WINDOW // 2, CADUCEUS.mask_id))[WINDOW // 2]
        tile_start, index = unmasked_tile(p0, WINDOW)
        tile_logits = logits(reference_ids(CHR1, tile_start))[index]
        ref_base = CHR1[p0].upper()
        for i, alt in enumerate(record.alts):
            expected_llr = masked_logits[COLUMN[alt]] - masked_logits[COLUMN[ref_base]]
            assert record.info["CADUCEUS_LLR"][i] == pytest.approx(expected_llr, rel=1e-5, abs=1e-5)
            unmasked_llr = tile_logits[COLUMN[alt]] - tile_logits[COLUMN[ref_base]]
            assert record.info["CADUCEUS_LLR_UNMASKED"][i] == pytest.approx(unmasked_llr, rel=1e-5, abs=1e-5)
            acgt = np.exp(masked_logits - masked_logits.max())
            p_alt = acgt[COLUMN[alt]] / acgt.sum()
            assert record.info["CADUCEUS_P_ALT"][i] == pytest.approx(p_alt, rel=1e-5)
            ref_mean = mean_embedding(ref_ids)
            alt_mean = mean_embedding(with_base(ref_ids, WINDOW // 2, CADUCEUS.base_ids[COLUMN[alt]]))
            assert record.info["CADUCEUS_EMB_L2"][i] == pytest.approx(
                np.linalg.norm(ref_mean - alt_mean), rel=1e-4, abs=1e-6
            )
        assert "CADUCEUS_FLAG" not in record.info


def test_every_record_comes_out_in_order_with_flags_and_an_index(
    run, tmp_path, genome, ph_checkpoint, caplog
):
    vcf = write_vcf(tmp_path, TRICKY)
    out = tmp_path / "out.vcf.gz"
    result = run(vcf, "--fasta", genome, "--model", ph_checkpoint, "-o", out, "--write-index")
    assert result.code == 0, result.err

    with caplog.at_level(logging.WARNING, logger="caduceus"), HtslibMessages() as messages:
        got = read_records(out)
        with pysam.VariantFile(str(out)) as indexed:
            region = [r.pos for r in indexed.fetch("1", 15, 40)]
        assert not messages.relay_warnings()
    assert not caplog.records  # htslib read the output without a warning
    assert region == [20, 30, 40]
    assert Path(f"{out}.tbi").exists() and not list(tmp_path.glob("*.partial*"))

    inputs = read_records(vcf)
    assert [(r.contig, r.pos, r.ref, r.alts, r.info["DP"]) for r in got] == [
        (r.contig, r.pos, r.ref, r.alts, r.info["DP"]) for r in inputs
    ]
    for record, flags, classes in zip(got, TRICKY_FLAGS, TRICKY_CLASSES, strict=True):
        assert record.info.get("CADUCEUS_FLAG") == flags
        assert record.info["CADUCEUS_CLASS"] == classes
        llr = record.info["CADUCEUS_LLR"]
        scored = [flag in (None, ".") for flag in (flags or [None] * len(record.alts))]
        assert [value is not None for value in llr] == scored


def test_the_python_api_writes_what_the_command_writes_and_returns_its_tally(
    run, tmp_path, genome, ph_checkpoint
):
    vcf = write_vcf(tmp_path, TRICKY)
    assert run(vcf, "--fasta", genome, "--model", ph_checkpoint, "-o", tmp_path / "cli.vcf").code == 0
    model = load_model(ph_checkpoint)
    settings = Settings(scores=("llr",), probs=False, window=WINDOW, flank=768, on_ref_mismatch="flag")
    with (
        HtslibMessages() as messages,
        Fasta(genome) as reader_fasta,
        Fasta(genome) as window_fasta,
        open_vcf(str(vcf), messages) as variants,
    ):
        add_scoring_header(variants.header, info_fields(settings, ModelIdentity.of(model)), {}, str(vcf))
        writer = VcfWriter(str(tmp_path / "api.vcf"), "v", variants.header, messages)
        tally = variants_pipeline.score_vcf(
            Engine(model), variants, writer, settings, reader_fasta=reader_fasta, window_fasta=window_fasta,
            messages=messages, source=str(vcf),
        )
        writer.close()
    flags = {"symbolic": 1, "ref_mismatch": 1, "contig_missing": 1}
    classes = {"snv": 5, "del": 2, "none": 1}
    assert (tally.records, tally.skipped, tally.scored, dict(tally.flags)) == (8, 0, 8, flags)
    assert dict(tally.classes) == classes
    assert [str(r) for r in read_records(tmp_path / "api.vcf")] == [
        str(r) for r in read_records(tmp_path / "cli.vcf")
    ]


def test_stdin_to_stdout_in_a_shell_pipe(run, tmp_path, genome, ph_checkpoint):
    vcf = write_vcf(tmp_path, TRICKY)
    reference = tmp_path / "file.vcf"
    assert run(vcf, "--fasta", genome, "--model", ph_checkpoint, "-o", reference).code == 0
    caduceus = f"{sys.executable} -c 'from caduceus_cli.cli import main; main()'"
    piped = subprocess.run(
        f"cat {vcf} | {caduceus} score-variants --fasta {genome} --model {ph_checkpoint} -w {WINDOW} -q"
        f" > {tmp_path / 'piped.vcf'}",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""
    assert data_lines(tmp_path / "piped.vcf") == data_lines(reference)


def test_a_vcf_from_a_pipe_is_scored_as_from_a_file(run, tmp_path, genome, ph_checkpoint, named_pipe):
    """`score-variants <(zcat calls.vcf.gz)`: a pipe is not a regular file, and is read once, as stdin is."""
    vcf = write_vcf(tmp_path, TRICKY)
    common = ("--fasta", genome, "--model", ph_checkpoint)
    assert run(vcf, *common, "-o", tmp_path / "file.vcf").code == 0
    bgzipped = tmp_path / "in.vcf.gz"
    pysam.tabix_compress(str(vcf), str(bgzipped))
    for name, content in (("plain", vcf.read_bytes()), ("bgzf", bgzipped.read_bytes())):
        piped = run(named_pipe(tmp_path / f"{name}.fifo", content), *common, "-o", tmp_path / f"{name}.vcf")
        assert piped.code == 0, piped.err
        assert data_lines(tmp_path / f"{name}.vcf") == data_lines(tmp_path / "file.vcf")


def test_a_shard_of_a_pipe_is_refused_before_any_work(run, tmp_path, genome):
    fifo = tmp_path / "calls.fifo"
    os.mkfifo(fifo)  # nothing writes: the command must not open it
    result = run(fifo, "--fasta", genome, "--shard", "1/2", "-o", tmp_path / "part.vcf")
    assert result.code == 2
    assert result.err == (
        "caduceus: error: --shard needs the VCF as a file (its records are counted first), not stdin or a pipe\n"
    )


def test_shards_concatenate_to_the_single_run(run, tmp_path, genome, ph_checkpoint, monkeypatch):
    monkeypatch.setattr(
        variants_pipeline, "CHUNK_RECORDS", 2
    )  # several chunks per run: order across chunk borders
    vcf = write_vcf(tmp_path, TRICKY + EDGE_AND_MIDDLE)
    common = ("--fasta", genome, "--model", ph_checkpoint, "-s", "llr", "-s", "llr-unmasked")
    assert run(vcf, *common, "-o", tmp_path / "all.vcf").code == 0
    assert run(vcf, *common, "-o", tmp_path / "again.vcf").code == 0
    assert data_lines(tmp_path / "all.vcf") == data_lines(tmp_path / "again.vcf")  # deterministic
    shards = []
    for i in (1, 2, 3):
        assert run(vcf, *common, "--shard", f"{i}/3", "-o", tmp_path / f"s{i}.vcf").code == 0
        shards.append([str(r) for r in read_records(tmp_path / f"s{i}.vcf")])
    assert [len(s) for s in shards] == [4, 4, 4]
    assert sum(shards, []) == [str(r) for r in read_records(tmp_path / "all.vcf")]


@pytest.mark.parametrize(
    ("flank", "averaged"),
    [
        (8, "averaged over 8 bp each side of it"),
        (32, "averaged over the whole window"),
        (500, "averaged over the whole window"),
    ],
)
def test_emb_cos_description_states_the_flank_as_clamped_to_the_window(
    run, tmp_path, genome, ph_checkpoint, flank, averaged
):
    vcf = write_vcf(tmp_path, EDGE_AND_MIDDLE)
    common = ("--fasta", genome, "--model", ph_checkpoint, "-s", "emb-cos", "--emb-flank", flank)
    assert run(vcf, *common, "-o", tmp_path / "out.vcf").code == 0
    with pysam.VariantFile(str(tmp_path / "out.vcf")) as scored:
        description = scored.header.info["CADUCEUS_EMB_COS"].description
    assert description.endswith(averaged, 0, description.index("; model"))


def test_a_plain_gzip_vcf_is_streamed_like_the_uncompressed_one(run, tmp_path, genome, ph_checkpoint):
    vcf = write_vcf(tmp_path, TRICKY)
    gzipped = tmp_path / "in.vcf.gz"
    gzipped.write_bytes(gzip.compress(vcf.read_bytes()))  # plain gzip, not BGZF: htslib cannot seek in it
    common = ("--fasta", genome, "--model", ph_checkpoint)
    assert run(vcf, *common, "-o", tmp_path / "plain.vcf").code == 0
    result = run(gzipped, *common, "-o", tmp_path / "gzip.vcf")
    assert result.code == 0, result.err
    assert data_lines(tmp_path / "gzip.vcf") == data_lines(tmp_path / "plain.vcf")
    assert run(gzipped, *common, "--shard", "2/2", "-o", tmp_path / "part2.vcf").code == 0
    records = [str(record) for record in read_records(tmp_path / "plain.vcf")]
    assert [str(record) for record in read_records(tmp_path / "part2.vcf")] == records[len(TRICKY) // 2 :]


def test_ref_mismatch_can_skip_or_stop(run, tmp_path, genome, ph_checkpoint):
    vcf = write_vcf(tmp_path, TRICKY)
    common = ("--fasta", genome, "--model", ph_checkpoint)
    assert run(vcf, *common, "--on-ref-mismatch", "skip", "-o", tmp_path / "skip.vcf").code == 0
    assert [r.pos for r in read_records(tmp_path / "skip.vcf")] == [10, 20, 30, 60, 70, 50, 5]
    result = run(vcf, *common, "--on-ref-mismatch", "error", "-o", tmp_path / "error.vcf")
    assert result.code == 1
    assert "record 4 at 1:40: REF N differs from the FASTA" in result.err
    assert not list(tmp_path.glob("error.vcf*"))


def test_malformed_vcf_is_one_error_and_leaves_no_output(run, tmp_path, genome, ph_checkpoint):
    vcf = write_vcf(tmp_path, [TRICKY[0], "1\t12x\t.\tA\tG\t.\t.\t.\n", TRICKY[1]])
    result = run(vcf, "--fasta", genome, "--model", ph_checkpoint, "-o", tmp_path / "out.vcf.gz", "-W")
    assert result.code == 1
    assert result.err.startswith(f"caduceus: error: {vcf}: record 2 (after 1:10): ")
    assert len(result.err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.vcf"]


def test_unreadable_fasta_is_one_error_and_leaves_no_output(run, tmp_path, ph_checkpoint):
    vcf = write_vcf(tmp_path, TRICKY)
    not_fasta = tmp_path / "ref.fa"
    not_fasta.write_text("this is not a FASTA\n")
    result = run(vcf, "--fasta", not_fasta, "--model", ph_checkpoint, "-o", tmp_path / "out.vcf")
    assert result.code == 1
    assert result.err.startswith(f"caduceus: error: {not_fasta}: not a FASTA file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.vcf", "ref.fa"]


def test_no_contig_in_the_fasta_names_both_sets_and_leaves_no_output_or_written_count(
    run_cli, tmp_path, genome, ph_checkpoint
):
    vcf = write_vcf(tmp_path, [line("chrUn", 5, "A", "G"), line("chrZ", 7, "C", "T")])
    log = tmp_path / "run.log"
    args = [vcf, "--fasta", genome, "--model", ph_checkpoint, "-o", tmp_path / "out.vcf", "--log-file", log]
    result = run_cli("score-variants", "--window", WINDOW, *args)
    assert result.code == 1
    assert "VCF contigs chrUn, chrZ; FASTA contigs chr1, chr2" in result.err
    assert not list(tmp_path.glob("out.vcf*"))
    assert "scores llr" in log.read_text() and "records written" not in log.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--window", "63"), "even"),
        (("--write-index",), "--write-index needs -o FILE"),
        (("--shard", "1/2"), "--shard needs the VCF as a file"),
        (("-O", "t", "--write-index"), "a table (-O t) has no index"),
        (("-o", "x.tsv", "--write-index"), "a table (-O t) has no index"),
    ],
)
def test_bad_option_combinations_are_usage_errors_before_any_work(run, tmp_path, genome, args, message):
    result = run("-", "--fasta", genome, *args)
    assert result.code == 2
    assert message in result.err


@pytest.mark.parametrize(("trained", "window"), [(1024, 1024), (131072, 2048), (None, 2048), (1001, 1000)])
def test_default_window_is_the_training_length_up_to_2048(trained, window):
    assert default_window(trained) == window


# --- -O t: the scores as a table ----------------------------------------------------------------


def read_table(text: str) -> list:
    """Rows of a TSV as named tuples, numbers as numbers (what pandas.read_csv(sep="\\t") gives)."""

    def cell(value: str) -> object:
        for kind in (int, float):
            with contextlib.suppress(ValueError):
                return kind(value)
        return value

    header, *lines = text.splitlines()
    Row = collections.namedtuple("Row", header.split("\t"))
    return [Row(*map(cell, line.split("\t"))) for line in lines]


def test_table_has_a_row_per_alt_in_input_order_with_the_vcfs_scores_and_the_masked_logits(
    run, tmp_path, genome, ph_checkpoint
):
    vcf = write_vcf(tmp_path, EDGE_AND_MIDDLE + TRICKY)
    options = ("--fasta", genome, "--model", ph_checkpoint, "-s", "llr", "-s", "llr-unmasked", "--probs")
    assert run(vcf, *options, "-o", tmp_path / "out.bcf").code == 0  # BCF keeps float32 exactly
    result = run(vcf, *options, "-o", tmp_path / "out.tsv.gz")
    assert result.code == 0, result.err

    table = read_table(gzip.decompress((tmp_path / "out.tsv.gz").read_bytes()).decode())
    scores = ["llr", "llr_unmasked", "p_ref", "p_alt", "logit_ref", "logit_alt"]
    assert list(table[0]._fields) == ["chrom", "pos", "id", "ref", "alt", "variant_class", *scores, "flag"]
    records = read_records(tmp_path / "out.bcf")
    expected = [(r, i, alt) for r in records for i, alt in enumerate(r.alts or ())]
    assert len(table) == len(expected)
    for row, (record, i, alt) in zip(table, expected, strict=True):
        assert (str(row.chrom), row.pos, row.ref, row.alt) == (record.contig, record.pos, record.ref, alt)
        flag = (record.info.get("CADUCEUS_FLAG") or (".",) * len(record.alts))[i]
        assert row.flag == flag
        if flag != ".":
            assert np.isnan([row.llr, row.llr_unmasked, row.logit_ref, row.logit_alt]).all()
            continue
        assert row.variant_class == record.info["CADUCEUS_CLASS"][i]
        for column in ("llr", "llr_unmasked", "p_alt"):
            value = record.info["CADUCEUS_" + column.upper()][i]  # None: not defined for the class
            assert np.isnan(getattr(row, column)) if value is None else np.float32(getattr(row, column)) == value
        if row.variant_class == "snv":  # logits of the masked row that gave llr
            assert row.logit_alt - row.logit_ref == pytest.approx(row.llr, abs=1e-5)
        else:
            assert np.isnan([row.logit_ref, row.logit_alt]).all()
    engine = Engine(load_model(ph_checkpoint))
    first = table[0]  # chr1:1, the contig's first base
    ids = with_base(reference_ids(CHR1, -WINDOW // 2), WINDOW // 2, CADUCEUS.mask_id)
    logits = next(iter(engine.map([Window(ids, None)], head="logits")))[1][WINDOW // 2]
    assert first.logit_ref == pytest.approx(logits[COLUMN[first.ref]], abs=1e-5)
    assert first.logit_alt == pytest.approx(logits[COLUMN[first.alt]], abs=1e-5)


def test_table_of_unmasked_llr_alone_gives_the_tile_rows_logits_on_stdout(
    run, tmp_path, genome, ph_checkpoint
):
    vcf = write_vcf(tmp_path, EDGE_AND_MIDDLE)
    result = run(vcf, "--fasta", genome, "--model", ph_checkpoint, "-s", "llr-unmasked", "-O", "t")
    assert result.code == 0, result.err
    table = read_table(result.out)
    assert list(table[0]._fields) == [
        "chrom", "pos", "id", "ref", "alt", "variant_class", "llr_unmasked", "logit_ref", "logit_alt", "flag"
    ]  # fmt: skip
    assert len(table) == 3 * len(EDGE_AND_MIDDLE)
    for row in table:
        assert row.logit_alt - row.logit_ref == pytest.approx(row.llr_unmasked, abs=1e-5)


def test_vcf_output_gets_only_the_requested_info_fields_not_the_tables_logits(
    run, tmp_path, genome, ph_checkpoint
):
    vcf = write_vcf(tmp_path, EDGE_AND_MIDDLE)
    result = run(vcf, "--fasta", genome, "--model", ph_checkpoint, "-s", "llr-unmasked", "-o", tmp_path / "o.vcf")
    assert result.code == 0, result.err
    assert "LOGIT_" not in (tmp_path / "o.vcf").read_text().upper()
    for record in read_records(tmp_path / "o.vcf"):
        assert set(record.info) == {"DP", "CADUCEUS_LLR_UNMASKED", "CADUCEUS_CLASS"}


def test_in_a_pipeline_progress_lines_never_repeat_the_closing_count(
    run_cli, tmp_path, genome, ph_checkpoint, monkeypatch
):
    """Off a terminal a progress line comes now and then (here before every chunk); the last one comes
    before the last chunk is scored, so the closing line alone gives the final count."""
    monkeypatch.setattr(variants_pipeline, "CHUNK_RECORDS", 2)
    monkeypatch.setattr(variants_pipeline, "LOG_EVERY_S", 0)
    vcf = write_vcf(tmp_path, TRICKY + EDGE_AND_MIDDLE)  # 12 records: 6 chunks
    result = run_cli("score-variants", vcf, "--fasta", genome, "-m", ph_checkpoint, "-w", WINDOW, "-o", tmp_path / "o.vcf")
    assert result.code == 0, result.err
    progress = [line.split(" INFO ")[1] for line in result.err.splitlines() if "written so far" in line]
    assert len(progress) == 6 and progress[0].startswith("0 records written so far")
    assert all(not line.startswith("12 records") for line in progress)
    assert result.err.count("12 records written") == 1
    assert "12 records written (0 skipped), 20 alleles scored (2 del, 1 none, 17 snv), not scored: " in result.err


def test_a_record_past_the_contigs_end_gets_its_own_flag_and_stops_a_strict_run(run, tmp_path, genome, ph_checkpoint):
    """chr2 is 100 bp in the FASTA: a record at 101, or a REF running past 100, is from another assembly."""
    vcf = write_vcf(tmp_path, [line("2", 99, CHR2[98:100] + "A", CHR2[98]), line("2", 101, "A", "G"), TRICKY[6]])
    common = ("--fasta", genome, "--model", ph_checkpoint)
    assert run(vcf, *common, "-o", tmp_path / "flag.vcf").code == 0
    flags = [record.info.get("CADUCEUS_FLAG") for record in read_records(tmp_path / "flag.vcf")]
    assert flags == [("past_contig_end",), ("past_contig_end",), None]
    assert run(vcf, *common, "--on-ref-mismatch", "skip", "-o", tmp_path / "skip.vcf").code == 0
    assert [record.pos for record in read_records(tmp_path / "skip.vcf")] == [50]
    result = run(vcf, *common, "--on-ref-mismatch", "error", "-o", tmp_path / "error.vcf")
    assert result.code == 1
    assert result.err == (
        f"caduceus: error: {vcf}: record 1 at 2:99: REF {CHR2[98:100]}A reaches past the end of chr2 (100 bp in "
        f"{genome}); a VCF of another assembly version? (--on-ref-mismatch error; use flag or skip to go on)\n"
    )
    assert not list(tmp_path.glob("error.vcf*"))


# ---------------------------------------------------------------------------------------------
# interrupted (Ctrl-C, or SIGTERM at a time limit: one path) and resumed

SORTED = [line("1", pos, CHR1[pos - 1], other_bases(CHR1[pos - 1])) for pos in range(1, 301, 6)]


def interrupt_at_chunk(monkeypatch, number: int) -> None:
    """Ctrl-C while the model runs the windows of chunk `number` (1-based)."""
    real, calls = score_plan.PlanRunner.run, []

    def run(self, plan):
        calls.append(1)
        if len(calls) == number:
            raise KeyboardInterrupt
        return real(self, plan)

    monkeypatch.setattr(score_plan.PlanRunner, "run", run)


@pytest.mark.parametrize("suffix", ["vcf", "vcf.gz"])
def test_an_interrupted_run_keeps_its_records_and_resume_completes_it_as_one_run(
    run, tmp_path, genome, ph_checkpoint, monkeypatch, suffix
):
    monkeypatch.setattr(variants_pipeline, "CHUNK_RECORDS", 4)
    vcf = write_vcf(tmp_path, SORTED)
    index = ("--write-index",) if suffix == "vcf.gz" else ()
    args = (vcf, "--fasta", genome, "--model", ph_checkpoint, "-s", "llr", "-s", "emb-cos", "--emb-flank", FLANK, *index)
    out, partial = tmp_path / f"out.{suffix}", tmp_path / f"out.{suffix}.partial"
    interrupt_at_chunk(monkeypatch, 4)
    code, _, err = run(*args, "-o", out)
    assert (code, err) == (
        130, f"caduceus: interrupted; 12 records done saved in {partial}; rerun the same command with --resume to continue\n"
    )  # fmt: skip
    assert len(read_records(partial)) == 12  # the three chunks scored before the interrupt, closed as a file
    monkeypatch.undo()
    monkeypatch.setattr(variants_pipeline, "CHUNK_RECORDS", 4)
    code, _, err = run(*args, "-o", out, "--resume")
    assert code == 0, err
    assert not partial.exists()
    assert run(*args, "-o", tmp_path / f"whole.{suffix}").code == 0
    assert data_lines(out) == data_lines(tmp_path / f"whole.{suffix}")
    if index:
        with pysam.VariantFile(str(out)) as indexed:
            assert [r.pos for r in indexed.fetch("1", 100, 200)] == [p for p in range(1, 301, 6) if 100 < p <= 200]


def test_a_resume_of_another_run_or_input_is_refused_and_keeps_the_partial_file(
    run, tmp_path, genome, ph_checkpoint, monkeypatch
):
    vcf = write_vcf(tmp_path, SORTED)
    monkeypatch.setattr(variants_pipeline, "CHUNK_RECORDS", 4)
    interrupt_at_chunk(monkeypatch, 2)
    common = ("--fasta", genome, "--model", ph_checkpoint, "-o", tmp_path / "out.vcf")
    assert run(vcf, *common).code == 130
    partial = tmp_path / "out.vcf.partial"
    saved = partial.read_bytes()
    code, _, err = run_cli_with_window(run, 32, vcf, *common, "--resume")
    assert code == 1 and err.startswith(f"caduceus: error: {partial}: cannot resume, it was made otherwise (")
    other = write_vcf(tmp_path, SORTED[1:], "other.vcf")
    code, _, err = run(other, *common, "--resume")
    assert code == 1
    assert err == (
        f"caduceus: error: {partial}: cannot resume: its last record (1:19) is not record 4 of {other} "
        "(another input?); run without --resume to start over\n"
    )
    assert partial.read_bytes() == saved and not (tmp_path / "out.vcf").exists()


def run_cli_with_window(run, window: int, *args):
    """`run` with a later --window, which overrides the fixture's."""
    return run(*args, "--window", window)


@pytest.mark.parametrize(
    "output", [("-O", "b", "-o", "out.bcf"), ("-o", "out.tsv"), ("-O", "z"), ("-o", "out.vcf.gz", "-O", "t")]
)
def test_resume_is_a_usage_error_where_nothing_would_be_kept(run, tmp_path, genome, output):
    result = run("in.vcf", "--fasta", genome, "--resume", *output)
    assert result.code == 2
    assert "--resume continues a VCF file (-o FILE, -O v or z)" in result.err


def test_resume_without_a_partial_file_says_to_run_without_it(run, tmp_path, genome, ph_checkpoint):
    vcf = write_vcf(tmp_path, SORTED)
    code, _, err = run(vcf, "--fasta", genome, "--model", ph_checkpoint, "-o", tmp_path / "out.vcf", "--resume")
    assert (code, err) == (
        1, f"caduceus: error: {tmp_path / 'out.vcf.partial'}: no partial file to resume; run without --resume\n"
    )  # fmt: skip


def test_a_run_stopped_before_its_first_chunk_resumes_from_the_start(run, tmp_path, genome, ph_checkpoint, monkeypatch):
    vcf = write_vcf(tmp_path, SORTED)
    args = (vcf, "--fasta", genome, "--model", ph_checkpoint, "-o", tmp_path / "out.vcf.gz")
    interrupt_at_chunk(monkeypatch, 1)
    assert run(*args).err.startswith(f"caduceus: interrupted; 0 records done saved in {tmp_path / 'out.vcf.gz.partial'};")
    monkeypatch.undo()
    assert run(*args, "--resume").code == 0
    assert run(vcf, "--fasta", genome, "--model", ph_checkpoint, "-o", tmp_path / "whole.vcf.gz").code == 0
    assert data_lines(tmp_path / "out.vcf.gz") == data_lines(tmp_path / "whole.vcf.gz")
