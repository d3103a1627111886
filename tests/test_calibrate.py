"""`caduceus calibrate` and `score-variants --background`: contexts, percentiles, sampling, shards, refusals."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pysam
import pytest
from conftest import caduceus

from caduceus_cli.alleles import Change
from caduceus_cli.calibration import Background, percentile, snv_context, variant_context
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.regions import Region, all_contigs
from caduceus_cli.pipelines import calibrate as calibrate_pipeline
from caduceus_cli.pipelines.calibrate import sample_sites

WINDOW = 64
rng = np.random.default_rng(5)
# N runs inside chr1 and at chr2's start: never sampled, and SNVs beside them fall back to `C>T`
CHR1 = "".join(rng.choice(list("ACGTacgt"), 300)) + "N" * 40 + "".join(rng.choice(list("ACGT"), 260))
CHR2 = "NN" + "".join(rng.choice(list("ACGT"), 298))
SITES = 150  # ~5 SNVs per trinucleotide context, 50 indels per class and length
OPTIONS = ("-w", WINDOW, "--max-indel", 3, "-q")


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calibrate") / "g.fa"
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in (("chr1", CHR1), ("chr2", CHR2))))
    return path


@pytest.fixture(scope="module")
def background(genome, tiny_checkpoint) -> Path:
    """A background of SITES sites of the whole genome with the tiny PH model."""
    out = genome.parent / "background.tsv.gz"
    assert caduceus("calibrate", genome, "-o", out, "-m", tiny_checkpoint(), "-n", SITES, *OPTIONS) == 0
    return out


def header_and_rows(path: Path) -> tuple[dict[str, str], list[list[str]]]:
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    meta = dict(line[1:].split("=", 1) for line in lines if line.startswith("#"))
    return meta, [line.split("\t") for line in lines if not line.startswith("#")]


def without_command(path: Path) -> str:
    text = gzip.decompress(path.read_bytes()).decode()
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#caduceus_command="))


@pytest.fixture(scope="module")
def rescored(background, genome, tiny_checkpoint) -> list[dict[str, str]]:
    """The background's own variants, as a VCF, through `score-variants --background -O t`."""
    _, rows = header_and_rows(background)
    vcf = genome.parent / "own.vcf"
    contigs = "".join(f"##contig=<ID={name},length={len(seq)}>\n" for name, seq in (("chr1", CHR1), ("chr2", CHR2)))
    vcf.write_text(f"##fileformat=VCFv4.2\n{contigs}#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   + "".join(f"{c}\t{p}\t.\t{r}\t{a}\t.\t.\t.\n" for c, p, r, a, *_ in rows[1:]))  # fmt: skip
    table = genome.parent / "own.tsv"
    assert caduceus("score-variants", vcf, "--fasta", genome, "-m", tiny_checkpoint(), "-w", WINDOW,
                    "--background", background, "-o", table, "-q") == 0  # fmt: skip
    lines = [line.split("\t") for line in table.read_text().splitlines()]
    return [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]


# --- the rules: contexts and percentiles ------------------------------------------------------


def test_snv_contexts_are_read_on_the_pyrimidine_strand():
    assert snv_context("A", "C", "T", "G") == "A[C>T]G"
    assert snv_context("a", "t", "g", "c") == "A[T>G]C"
    assert snv_context("A", "G", "A", "T") == "A[C>T]T"  # G>A between A and T is C>T between A and T
    assert snv_context("C", "A", "G", "G") == "C[T>C]G"
    assert snv_context("N", "C", "T", "G") == "C>T" and snv_context("A", "G", "T", "N") == "C>A"


def test_indels_are_compared_by_class_and_length_and_other_changes_not_at_all():
    def nothing(start, end):
        raise AssertionError("an indel's context reads no reference")

    assert variant_context(Change(10, "", "GGA"), nothing) == "ins:3"
    assert variant_context(Change(10, "T", ""), nothing) == "del:1"
    assert variant_context(Change(10, "AC", "GT"), nothing) is None  # MNV
    assert variant_context(Change(10, "AC", "G"), nothing) is None  # complex
    assert variant_context(Change(1, "G", "T"), lambda start, end: "TGA"[start : end]) == "T[C>A]A"


def test_a_percentile_is_the_mid_rank_with_ties_counted_half():
    values = np.array([1.0, 2.0, 2.0, 3.0], dtype=np.float32)
    assert [percentile(values, x) for x in (0.5, 1.0, 2.0, 2.5, 3.0, 4.0)] == [0.0, 12.5, 50.0, 75.0, 87.5, 100.0]
    distinct = np.sort(np.random.default_rng(0).normal(size=7).astype(np.float32))
    assert [percentile(distinct, x) for x in distinct] == pytest.approx((np.arange(7) + 0.5) / 7 * 100)
    # compared at float32, the precision scores are written at
    assert percentile(np.array([0.1], dtype=np.float32), 0.1) == 50.0


def test_a_snv_beside_an_n_is_compared_with_every_background_snv_of_its_substitution():
    background = Background.from_rows(
        "bg", {}, ["A[C>T]G", "T[C>T]T", "C>T", "A[C>A]G", "del:1"], {"llr": np.array([-3.0, -1.0, -2.0, 5.0, 0.0])}
    )
    assert background.percentiles("C>T", {"llr": -1.5}) == {"llr-pct": pytest.approx(100 * 2 / 3)}
    assert background.percentiles("A[C>T]G", {"llr": -1.5}) == {"llr-pct": 100.0}
    assert background.percentiles("ins:2", {"llr": 0.0}) == {}  # a context the background lacks
    assert background.percentiles(None, {"llr": 0.0}) == {}


# --- sampling --------------------------------------------------------------------------------


def test_the_same_seed_draws_the_same_sites_and_every_site_is_an_acgt_base_of_the_regions(genome):
    with Fasta(genome) as fasta:
        whole = all_contigs(fasta)
        first, again = (sample_sites(fasta, whole, 60, 7, 3) for _ in range(2))
        other = sample_sites(fasta, whole, 60, 8, 3)
        inside = sample_sites(fasta, [Region("chr1", 280, 360), Region("chr1", 330, 350)], 1_000, 7, 3)
    assert first.sites == again.sites and np.array_equal(first.inserted, again.inserted)
    assert first.sites != other.sites
    assert first.sites == sorted(first.sites, key=lambda site: (site[0] != "chr1", site[1]))  # site order
    assert len(set(first.sites)) == 60 and all((CHR1 if c == "chr1" else CHR2)[p] in "ACGTacgt" for c, p in first.sites)
    # more sites asked for than the regions' union holds A/C/G/T bases (the N run left out): each of them, once
    assert inside.acgt_bases == 40 and inside.sites == [("chr1", p) for p in [*range(280, 300), *range(340, 360)]]


def test_sites_used_and_regions_are_recorded_and_no_half_file_is_left_on_failure(
    run_cli, genome, tiny_checkpoint, tmp_path, monkeypatch
):
    out = tmp_path / "small.tsv.gz"
    assert run_cli("calibrate", genome, "-o", out, "-m", tiny_checkpoint(), "-n", 100, "-r", "chr1:281-350",
                   "--no-indels", *OPTIONS).code == 0  # fmt: skip
    meta, rows = header_and_rows(out)
    assert (meta["sites_requested"], meta["sites_used"], meta["acgt_bases"]) == ("100", "30", "30")
    assert len(rows) == 1 + 3 * 30 and {int(row[1]) for row in rows[1:]} == {*range(281, 301), *range(341, 351)}
    exists = run_cli("calibrate", genome, "-o", out, "-m", tiny_checkpoint(), *OPTIONS)
    assert exists.code == 1 and "output exists; use --force" in exists.err

    def fail_after_one_row(self, sites, on_sites=None):
        yield calibrate_pipeline.Scored("chr1", 0, "A", "C", "snv", "A[T>G]C", {"llr": -1.0})
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(calibrate_pipeline.SiteScorer, "score", fail_after_one_row)
    failed = tmp_path / "failed.tsv.gz"
    result = run_cli("calibrate", genome, "-o", failed, "-m", tiny_checkpoint(), "-n", 5, *OPTIONS)
    assert result.code == 1 and result.err.strip() == f"caduceus: error: {failed}: cannot write: No space left on device"
    assert list(tmp_path.glob("failed*")) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("-o", "bg.tsv"), "-o bg.tsv: a background is a gzipped file; name it .tsv.gz"),
        (("-o", "bg.tsv.gz", "-n", 0), "--sites 0: must be at least 1"),
        (("-o", "bg.tsv.gz", "--max-indel", 33), "--max-indel 33: an indel is scored when it spans at most W/2 = 32"),
    ],
)
def test_calibrate_refuses_bad_options_with_exit_2_and_writes_nothing(
    run_cli, genome, tiny_checkpoint, tmp_path, monkeypatch, options, message
):
    monkeypatch.chdir(tmp_path)
    result = run_cli("calibrate", genome, "-m", tiny_checkpoint(), "-w", WINDOW, "-q", *options)
    assert result.code == 2 and result.err == f"caduceus: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


# --- the background and score-variants --------------------------------------------------------


def test_the_background_records_how_it_was_made(background, genome, tiny_checkpoint):
    meta, rows = header_and_rows(background)
    assert gzip.decompress(background.read_bytes()).startswith(b"#caduceus_background=1\n")
    assert meta["model_source"] == str(tiny_checkpoint()) and len(meta["model_sha256"]) == 64
    assert (meta["window"], meta["variant_index"], meta["llr_flank"], meta["scores"]) == ("64", "32", "8", "llr")
    assert (meta["seed"], meta["sites_requested"], meta["sites_used"], meta["genome"]) == ("1", "150", "150", "g.fa")
    assert "caduceus_shard" not in meta and rows[0] == ["chrom", "pos", "ref", "alt", "class", "context", "llr"]
    kinds = [row[4] for row in rows[1:]]
    with Fasta(genome) as fasta:  # deletions reaching an N or the contig's end are flagged not_acgt: left out
        sample = sample_sites(fasta, all_contigs(fasta), SITES, 1, 3)
    sequences = {"chr1": CHR1 + "N" * 3, "chr2": CHR2 + "N" * 3}
    reaching_n = sum("N" in sequences[c][p + 1 : p + 1 + n]
                     for (c, p), n in zip(sample.sites, sample.deletion_lengths, strict=True))  # fmt: skip
    assert reaching_n > 0
    assert (kinds.count("snv"), kinds.count("del"), kinds.count("ins")) == (3 * SITES, SITES - reaching_n, SITES)
    assert {row[5] for row in rows[1:] if row[4] != "snv"} == {"del:1", "del:2", "del:3", "ins:1", "ins:2", "ins:3"}
    assert {row[5].split(">")[0][-1] for row in rows[1:] if row[4] == "snv"} == {"C", "T"}  # pyrimidine strand


def test_score_variants_gives_the_background_variants_the_scores_the_background_holds(background, rescored):
    _, rows = header_and_rows(background)
    assert [(r["chrom"], r["pos"], r["ref"], r["alt"], r["variant_class"]) for r in rescored] == [
        tuple(row[:5]) for row in rows[1:]
    ]
    assert [r["llr"] for r in rescored] == [row[6] for row in rows[1:]]


def evenly_spread(values: np.ndarray) -> list[float]:
    """Percentiles (i + 0.5) / m * 100 of the sorted values, tied values sharing the mean of their places."""
    ordered = np.sort(values)
    places = (np.arange(len(ordered)) + 0.5) / len(ordered) * 100
    return [float(places[ordered == value].mean()) for value in ordered]


def test_the_background_variants_percentiles_are_evenly_spread_in_each_context(background, rescored):
    _, rows = header_and_rows(background)
    contexts = np.array([row[5] for row in rows[1:]])
    llr = np.array([float(row[6]) for row in rows[1:]], dtype=np.float32)
    got = np.array([float(scored["llr_pct"]) for scored in rescored])
    fallbacks = 0
    for context in set(contexts.tolist()):
        mine = contexts == context
        if "[" in context or ":" in context:
            expected = evenly_spread(llr[mine])
        else:  # beside an N: among every SNV of that substitution, whatever its neighbours
            pooled = np.sort(llr[mine | (np.char.find(contexts, f"[{context}]") == 1)])
            expected = sorted(percentile(pooled, value) for value in llr[mine])
            fallbacks += 1
        assert sorted(got[mine]) == pytest.approx(expected, abs=1e-4), context
    assert fallbacks > 0


def test_percentiles_are_declared_and_missing_where_a_change_has_no_context(
    run_cli, background, genome, tiny_checkpoint, tmp_path
):
    vcf = tmp_path / "v.vcf"
    mnv = CHR1[100:102]
    other = "".join("A" if base.upper() != "A" else "C" for base in mnv)
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=600>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   f"chr1\t101\t.\t{mnv.upper()}\t{other},{mnv[0].upper()}\t.\t.\t.\n")  # fmt: skip
    out = tmp_path / "out.vcf"
    result = run_cli("score-variants", vcf, "--fasta", genome, "-m", tiny_checkpoint(), "-w", WINDOW,
                     "--background", background, "-o", out, "-q")  # fmt: skip
    assert result.code == 0, result.err
    text, variants = out.read_text(), len(header_and_rows(background)[1]) - 1
    assert '##INFO=<ID=CADUCEUS_LLR_PCT,Number=A,Type=Float,Description="Percentile (0-100, mid-rank)' in text
    assert f"among the background variants of the same context in {background} ({variants} variants" in text
    assert "CADUCEUS_LLR_PCT=.," in text.splitlines()[-1]  # the MNV has none; the deletion has one
    assert f"##caduceus_background=file={background};variants={variants};genome=g.fa" in text


@pytest.mark.parametrize(
    ("options", "edit", "message"),
    [
        (("-m", "ps"), None, "made with model"),
        (("-w", 128), None, "made with window 64, but this run has window 128"),
        (("--variant-index", 10), None, "made with variant index 32, but this run has variant index 10"),
        (("-s", "llr", "-s", "emb-cos", "--emb-flank", 8), None, "has no emb-cos scores (it has llr); calibrate with"),
        ((), ("#rc=", "#rc=none\n"), "made with RC handling none, but this run has RC handling RC-conjoined"),
        ((), ("#llr_flank=", "#llr_flank=16\n"), "made with llr flank 16, but this run has llr flank 8"),
        ((), ("#window=", "#caduceus_shard=1/2\n#window=64\n"), "shard 1/2 of a background; join the shards first"),
    ],
)
def test_score_variants_refuses_a_background_of_another_model_or_settings_in_one_line(
    run_cli, background, genome, tiny_checkpoint, tmp_path, options, edit, message
):
    if edit is not None:  # a header line changed by hand
        start, replacement = edit
        lines = gzip.decompress(background.read_bytes()).decode().splitlines(keepends=True)
        edited = tmp_path / "edited.tsv.gz"
        text = "".join(replacement if line.startswith(start) else line for line in lines)
        edited.write_bytes(gzip.compress(text.encode()))
        background = edited
    options = tuple(tiny_checkpoint("ps") if value == "ps" else value for value in options)
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   f"chr1\t11\t.\t{CHR1[10].upper()}\tA,C\t.\t.\t.\n")  # fmt: skip
    out = tmp_path / "out.vcf.gz"
    result = run_cli("score-variants", vcf, "--fasta", genome, "-m", tiny_checkpoint(), "-w", WINDOW,
                     "--background", background, "-o", out, "-q", *options)  # fmt: skip
    assert result.code == 1 and result.err.count("\n") == 1 and message in result.err, result.err
    assert result.err.startswith(f"caduceus: error: {background}: ")
    assert list(tmp_path.glob("out*")) == []


# --- shards ----------------------------------------------------------------------------------


def test_shards_merged_equal_the_single_run_apart_from_the_command_line(run_cli, genome, tiny_checkpoint, tmp_path):
    def calibrate(out: Path, *options) -> None:
        result = run_cli("calibrate", genome, "-o", out, "-m", tiny_checkpoint(), "-n", 40, *OPTIONS, *options)
        assert result.code == 0, result.err

    single = tmp_path / "single.tsv.gz"
    calibrate(single)
    parts = [tmp_path / f"part{i}.tsv.gz" for i in (1, 2, 3)]
    for index, part in enumerate(parts, start=1):
        calibrate(part, "--shard", f"{index}/3")
    assert header_and_rows(parts[1])[0]["caduceus_shard"] == "2/3"
    merged = tmp_path / "merged.tsv.gz"
    result = run_cli("merge", parts[2], parts[0], parts[1], "-o", merged, "-q")
    assert result.code == 0, result.err
    assert without_command(merged) == without_command(single)
    assert header_and_rows(merged)[0]["caduceus_command"].endswith("(3 shards, in --shard order)")

    other_seed = tmp_path / "seed2.tsv.gz"
    calibrate(other_seed, "--shard", "3/3", "--seed", 2)
    for inputs, message in (
        (parts[:2], "shard 3/3 is missing"),
        ([parts[0], parts[1], parts[1]], "shard 2/3 given twice"),
        ([*parts[:2], other_seed], "seed is '2', in"),
        ([single, parts[0]], "not a shard of a background"),
    ):
        refused = run_cli("merge", *inputs, "-o", tmp_path / "refused.tsv.gz", "-q")
        assert refused.code == 1 and message in refused.err, refused.err
        assert not (tmp_path / "refused.tsv.gz").exists()


    # a shard as versions before the one shard key wrote it: refused, never read as a whole background
    earlier = tmp_path / "earlier.tsv.gz"
    earlier.write_bytes(gzip.compress(gzip.decompress(parts[0].read_bytes()).replace(b"#caduceus_shard=", b"#shard=")))
    vcf = tmp_path / "one.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    for out, command in (
        (tmp_path / "refused.tsv.gz", ("merge", earlier, parts[1], parts[2])),
        (tmp_path / "refused.vcf", ("score-variants", vcf, "--fasta", genome, "--background", earlier)),
    ):
        refused = run_cli(*command, "-o", out, "-q")
        assert refused.code == 1 and "shard 1/3 of a background written by an earlier caduceus" in refused.err
        assert not out.exists()


def test_in_a_pipeline_progress_lines_never_repeat_the_closing_count(
    run_cli, genome, tiny_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setattr(calibrate_pipeline, "LOG_EVERY_S", 0)  # a progress line whenever it may come
    monkeypatch.setattr(calibrate_pipeline, "CHUNK_SITES", 8)  # 3 chunks of sites
    out = tmp_path / "bg.tsv.gz"
    result = run_cli("calibrate", genome, "-o", out, "-m", tiny_checkpoint(), "-n", 20, "-w", WINDOW, "--no-indels")
    assert result.code == 0, result.err
    progress = [line.split(" INFO ")[1] for line in result.err.splitlines() if " scored, " in line]
    assert [line.split(" scored")[0] for line in progress] == ["8 of 20 sites", "16 of 20 sites"]
    assert result.err.count(" INFO 20 sites, 60 variants (60 snv), left out: none; ") == 1


def test_percentile_declarations_say_what_a_low_rank_means_and_where_there_is_none(
    run_cli, background, genome, tiny_checkpoint, tmp_path
):
    """One vocabulary: a rank among random changes of the context, never "damaging"; a background of SNVs
    only names indels as what has no percentile, not "indels longer than 0"."""
    snvs_only = tmp_path / "snvs.tsv.gz"
    assert caduceus("calibrate", genome, "-o", snvs_only, "-m", tiny_checkpoint(), "-n", 30, "--no-indels", *OPTIONS) == 0
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   f"chr1\t101\t.\t{CHR1[100].upper()}\t{'A' if CHR1[100].upper() != 'A' else 'C'}\t.\t.\t.\n")  # fmt: skip
    described = {}
    for name, used in (("indels", background), ("snvs", snvs_only)):
        out = tmp_path / f"{name}.vcf"
        result = run_cli("score-variants", vcf, "--fasta", genome, "-m", tiny_checkpoint(), "-w", WINDOW,
                         "--background", used, "-o", out, "-q")  # fmt: skip
        assert result.code == 0, result.err
        with pysam.VariantFile(str(out)) as scored:
            described[name] = scored.header.info["CADUCEUS_LLR_PCT"].description
    for description in described.values():
        assert "low: lower than most random changes there, a change the model expects less than most" in description
        assert "a rank among random changes, not a probability of pathogenicity" in description
        assert "damaging" not in description
    assert described["indels"].endswith("; . for MNVs, complex changes and indels longer than 3 bp")
    assert described["snvs"].endswith("; . for MNVs, complex changes and every indel (a background of SNVs only)")


def test_a_small_background_warns_that_its_percentiles_are_coarse(run_cli, background, genome, tiny_checkpoint, tmp_path):
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    result = run_cli("score-variants", vcf, "--fasta", genome, "-m", tiny_checkpoint(), "-w", WINDOW,
                     "--background", background, "-o", tmp_path / "out.vcf")  # fmt: skip
    assert result.code == 0, result.err
    size = Background.from_rows("b", {}, *_contexts_and_values(background)).context_size()
    assert 0 < size < 20
    assert (
        f" WARNING {background}: {size} variants per context (median), so percentiles come in steps of "
        f"{100 / size:.0f} points or more and move by several points between backgrounds of this size; "
        "calibrate with more sites (-n 20000 or more, docs/commands/calibrate.md: How many sites)\n"
    ) in result.err


def test_a_background_with_a_hundred_variants_per_context_gives_no_warning(caplog):
    contexts = ["A[C>T]G"] * 100 + ["del:1"] * 100 + ["C>A"] * 3
    values = {"llr": np.linspace(-3, 1, len(contexts)).astype(np.float32)}
    background = Background.from_rows("big.tsv.gz", {}, contexts, values)
    assert background.context_size() == 100
    background.warn_if_coarse()
    assert caplog.records == []


def _contexts_and_values(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    _, rows = header_and_rows(path)
    columns = rows[0]
    contexts = [row[columns.index("context")] for row in rows[1:]]
    return contexts, {"llr": np.array([float(row[columns.index("llr")]) for row in rows[1:]], dtype=np.float32)}


def test_a_background_and_a_chrom_map_from_pipes_are_read_once(
    run_cli, background, genome, tiny_checkpoint, tmp_path, named_pipe
):
    """`--background <(cat bg.tsv.gz) --chrom-map <(...)`: each read once, though the reference opens twice."""
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   f"1\t101\t.\t{CHR1[100].upper()}\t{'A' if CHR1[100].upper() != 'A' else 'C'}\t.\t.\t.\n")  # fmt: skip
    names = tmp_path / "names.txt"
    names.write_text("1 chr1\n")
    common = ("score-variants", vcf, "--fasta", genome, "-m", tiny_checkpoint(), "-w", WINDOW, "-O", "t", "-q")
    assert run_cli(*common, "--background", background, "--chrom-map", names, "-o", tmp_path / "files.tsv").code == 0
    background_pipe = named_pipe(tmp_path / "bg.fifo", background.read_bytes())
    names_pipe = named_pipe(tmp_path / "names.fifo", names.read_bytes())
    piped = run_cli(*common, "--background", background_pipe, "--chrom-map", names_pipe, "-o", tmp_path / "pipes.tsv")
    assert piped.code == 0, piped.err
    assert (tmp_path / "pipes.tsv").read_text() == (tmp_path / "files.tsv").read_text()
    assert (tmp_path / "files.tsv").read_text().splitlines()[1].split("\t")[7] != "NaN"  # a percentile came
