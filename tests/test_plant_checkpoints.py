"""Checkpoints in PlantCaduceus' and PlantCAD2's published layouts: GPN's tokenizer, an 8-id vocabulary;
PlantCaduceus with Mamba-1 mixers and pytorch_model.bin, PlantCAD2 with Mamba-2 mixers and
model.safetensors.

Every command and the Python API run them, matching the original code (../shared/conformance/
plantcad_d48_l2 and plantcad2_d64_l2, when present) and the projects' own zero-shot and embedding
recipes; on a fresh clone the same paths run on tiny checkpoints in those layouts
(`make_plantcad_checkpoint`, `make_plantcad2_checkpoint`).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pysam
import pytest
import torch
from conftest import CONFORMANCE, GPN_TOKENIZER_CONFIG, GPN_TOKENIZER_JSON

from caduceus_cli import load_model
from caduceus_cli.errors import CheckpointError, InputError
from caduceus_cli.tokens import CADUCEUS, read_tokenizer

PLANTCAD = CONFORMANCE / "plantcad_d48_l2"
needs_fixture = pytest.mark.skipif(not PLANTCAD.is_dir(), reason="../shared/conformance not present")
# the published-layout fixtures, their tiny fresh-clone twins (conftest fixtures) and float32 tolerances
LAYOUTS = {
    "plantcaduceus": (PLANTCAD, "plantcad_checkpoint", {"logits": 1e-4, "hidden": 1e-5}),
    "plantcad2": (CONFORMANCE / "plantcad2_d64_l2", "plantcad2_checkpoint", {"logits": 1e-4, "hidden": 3e-5}),
}


def write_fasta(path: Path, contigs: dict[str, str]) -> Path:
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in contigs.items()))
    return path


def write_vcf(path: Path, contig: str, length: int, records: list[tuple[int, str, str]]) -> Path:
    header = f"##fileformat=VCFv4.2\n##contig=<ID={contig},length={length}>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    path.write_text(header + "".join(f"{contig}\t{pos}\t.\t{ref}\t{alt}\t.\t.\t.\n" for pos, ref, alt in records))
    return path


def api_logits(model, text: str) -> np.ndarray:
    """(L, 4) A, C, G, T logits of one forward pass over `text`, through the Python API."""
    ids = torch.from_numpy(model.tokenizer.encode(text))[None]
    with torch.inference_mode():
        return model.tokenizer.nucleotide_logits(model.logits_conjoined(ids))[0].double().numpy()


# --- the tokenizer ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["ours", "published"])
def test_gpn_tokenizer_gives_the_ids_of_the_tokenizers_library(tmp_path, source):
    tokenizers = pytest.importorskip("tokenizers")
    if source == "published":
        if not PLANTCAD.is_dir():
            pytest.skip("../shared/conformance not present")
        folder = PLANTCAD
    else:
        folder = tmp_path
        (folder / "tokenizer.json").write_text(json.dumps(GPN_TOKENIZER_JSON))
        (folder / "tokenizer_config.json").write_text(json.dumps(GPN_TOKENIZER_CONFIG))
    ours = read_tokenizer(folder)
    reference = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    rng = np.random.default_rng(0)
    letters = list("ACGTNacgtnRYSWKMBDHVUXryswkmbdhvux")
    for length in (1, 7, 64, 513):
        text = "".join(rng.choice(letters, length))
        assert ours.encode(text).tolist() == reference.encode(text, add_special_tokens=False).ids, text
    assert (ours.base_ids, ours.mask_id, ours.unknown_id, ours.pad_id) == ((3, 4, 5, 6), 1, 2, 0)


@needs_fixture
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_published_layout_tokenizes_the_fixture_strings_as_recorded(layout):
    folder = LAYOUTS[layout][0]
    cases = json.loads((folder / "cases.json").read_text())
    tokenizer = load_model(folder).tokenizer
    for name, text in cases["strings"].items():
        assert tokenizer.encode(text).tolist() == cases["ids"][name], name


def test_caduceus_checkpoints_keep_the_original_character_tokenizer(ph_checkpoint):
    from caduceus_cli.model.load import default_model_path

    for folder in (ph_checkpoint, default_model_path()):
        tokenizer = load_model(folder).tokenizer
        assert tokenizer.encode("ACGTNacgtnRY").tolist() == [7, 8, 9, 10, 11] * 2 + [11, 11]
        assert (tokenizer.mask_id, tokenizer.kind) == (3, "CaduceusTokenizer")


def test_non_letters_are_an_input_error_for_every_tokenizer(plantcad_checkpoint):
    for tokenizer in (CADUCEUS, load_model(plantcad_checkpoint).tokenizer):
        with pytest.raises(InputError, match=r"^chr1:5: character '-' at offset 2 is not a nucleotide letter$"):
            tokenizer.encode("AC-GT", where="chr1:5")


def _published_layout(tmp_path: Path, plantcad_checkpoint: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(plantcad_checkpoint, folder)
    return folder


def _edit_json(path: Path, edit) -> None:
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: _edit_json(f / "tokenizer.json", lambda r: r["model"].update(merges=["a c"])),
         r"tokenizer.json: 1 BPE merges make tokens of several bases; caduceus reads character-level"),
        (lambda f: _edit_json(f / "tokenizer.json", lambda r: r["model"].update(fuse_unk=True)),
         r"tokenizer.json: fuse_unk or byte_fallback change the number of tokens"),
        (lambda f: _edit_json(f / "tokenizer.json", lambda r: r["model"].update(type="WordPiece")),
         r"tokenizer.json: model type 'WordPiece' is not a BPE vocabulary of characters"),
        (lambda f: _edit_json(f / "tokenizer.json", lambda r: r.update(normalizer={"type": "Replace"})),
         r"tokenizer.json: normalizer 'Replace' may change the letters"),
        (lambda f: _edit_json(f / "tokenizer.json", lambda r: r["model"]["vocab"].pop("g")),
         r"tokenizer.json: base G \(either case\) has no id of its own"),
        (lambda f: [_edit_json(f / name, lambda r: r.pop("mask_token"))
                    for name in ("tokenizer_config.json", "special_tokens_map.json")],
         r"tokenizer.json: no \[MASK\] token"),
        (lambda f: (f / "tokenizer.json").write_text("{not json"), r"tokenizer.json: cannot read"),
        (lambda f: _edit_json(f / "config.json", lambda r: r.update(complement_map={"3": 4, "4": 3})),
         r"config.json: key 'complement_map' maps A \(id 3\) to id 4, but the tokenizer \(tokenizer.json\) "
         r"has its complement at id 6"),
        (lambda f: [(f / name).unlink() for name in ("tokenizer.json", "tokenizer_config.json")],
         r"config.json: the tokenizer \(the original code's fixed vocabulary \(no tokenizer files\)\) gives "
         r"C id 8, but the model's embedding table has 8 rows"),
        (lambda f: [(f / "tokenizer.json").unlink(),
                    _edit_json(f / "tokenizer_config.json", lambda r: r.update(tokenizer_class="BertTokenizer"))],
         r"tokenizer_config.json: tokenizer_class 'BertTokenizer' without a tokenizer.json"),
    ],
)  # fmt: skip
def test_a_tokenizer_that_cannot_be_understood_is_refused_at_load_naming_file_and_reason(
    tmp_path, plantcad_checkpoint, damage, message
):
    folder = _published_layout(tmp_path, plantcad_checkpoint)
    damage(folder)
    with pytest.raises(CheckpointError, match=message) as error:
        load_model(folder)
    assert "\n" not in str(error.value) and str(folder) in str(error.value)


def test_a_misfit_tokenizer_is_one_error_line_from_every_command(run_cli, tmp_path, plantcad_checkpoint):
    folder = _published_layout(tmp_path, plantcad_checkpoint)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer_config.json").unlink()
    fasta = write_fasta(tmp_path / "g.fa", {"c": "ACGT" * 10})
    result = run_cli("embed", fasta, "-m", folder, "-o", tmp_path / "e.h5", "-q")
    assert result.code == 1
    assert result.err.count("\n") == 1 and "embedding table has 8 rows" in result.err


# --- the model and every command ----------------------------------------------------------------


@needs_fixture
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_published_layout_reproduces_the_original_codes_outputs(layout, dtype):
    """Every string of the fixture: for PlantCAD2 lengths below, at and past the SSD's 256-position chunk."""
    folder, _, float32_tol = LAYOUTS[layout]
    tol = {"logits": 1e-9, "hidden": 1e-9} if dtype == "float64" else float32_tol
    model = load_model(folder, dtype=dtype)
    cases = json.loads((folder / "cases.json").read_text())
    expected = np.load(folder / "expected.npz")
    for name, text in cases["strings"].items():
        ids = torch.from_numpy(model.tokenizer.encode(text))[None]
        with torch.inference_mode():
            out = model(ids)
            emb = model.embed(ids)  # PS, rc auto: the projects' embedding recipe
        assert np.abs(out.logits[0].double().numpy() - expected[f"{name}__logits"]).max() <= tol["logits"]
        assert np.abs(out.hidden[0].double().numpy() - expected[f"{name}__hidden"]).max() <= tol["hidden"]
        assert np.abs(emb[0].double().numpy() - expected[f"{name}__emb"]).max() <= tol["hidden"]


@needs_fixture
@pytest.mark.parametrize(("dtype", "tol"), [("float64", 1e-9), ("float32", 1e-4)])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_score_variants_reproduces_the_zero_shot_scores_of_the_original_recipe(run_cli, tmp_path, layout, dtype, tol):
    """The projects' recipe at the fixture's window: a 512-base window with [MASK] at index 255 (window / 2 - 1;
    PlantCAD2 at 8,192 bases: 4,095), one pass, log P(alt)/P(ref) over a, c, g, t."""
    folder = LAYOUTS[layout][0]
    cases = json.loads((folder / "cases.json").read_text())
    for name in ("S512", "S512b"):
        text = cases["strings"][name]
        wanted = {case["alt"]: case for case in cases["zero_shot"] if case["sequence"] == name}
        index = next(iter(wanted.values()))["index"]
        fasta = write_fasta(tmp_path / f"{name}.fa", {name: text})
        ref = text[index].upper()
        vcf = write_vcf(tmp_path / f"{name}.vcf", name, len(text), [(index + 1, ref, ",".join(wanted))])
        out = tmp_path / f"{name}.bcf"
        result = run_cli("score-variants", vcf, "--fasta", fasta, "-m", folder, "--window", 512,
                         "--variant-index", 255, "--dtype", dtype, "-o", out, "-q")  # fmt: skip
        assert result.code == 0, result.err
        with pysam.VariantFile(str(out)) as scored:
            record = next(iter(scored))
        for alt, llr in zip(record.alts, record.info["CADUCEUS_LLR"], strict=True):
            assert wanted[alt]["ref"] == ref
            # BCF stores float32: compare float64 runs at float32 resolution of the value
            assert llr == pytest.approx(wanted[alt]["llr"], abs=max(tol, 4e-7 * abs(llr)))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_windows_past_the_contig_end_read_n_as_the_checkpoints_unknown_id(run_cli, tmp_path, request, layout):
    """Both projects pad with N, which their tokenizer reads as [UNK]: the masked window of a variant near a
    contig end is N-padded text tokenized by the checkpoint's own tokenizer."""
    plantcad_checkpoint = request.getfixturevalue(LAYOUTS[layout][1])
    rng = np.random.default_rng(3)
    contig = "".join(rng.choice(list("ACGT"), 40))
    fasta = write_fasta(tmp_path / "g.fa", {"c": contig})
    vcf = write_vcf(tmp_path / "v.vcf", "c", 40, [(3, contig[2], "ACGT".replace(contig[2], "")[0])])
    out = tmp_path / "out.bcf"
    result = run_cli("score-variants", vcf, "--fasta", fasta, "-m", plantcad_checkpoint, "--window", 32,
                     "--variant-index", 15, "--probs", "-o", out, "-q")  # fmt: skip
    assert result.code == 0, result.err
    model = load_model(plantcad_checkpoint)
    window = "N" * 13 + contig[:19]
    ids = model.tokenizer.encode(window)
    assert (ids[:13] == 2).all() and ids[15] == model.tokenizer.base_ids["ACGT".index(contig[2])]
    ids[15] = model.tokenizer.mask_id
    with torch.inference_mode():
        logits = model.tokenizer.nucleotide_logits(model.logits_conjoined(torch.from_numpy(ids)[None]))[0, 15]
    with pysam.VariantFile(str(out)) as scored:
        record = next(iter(scored))
    alt, ref = record.alts[0], record.ref
    expected = float(logits["ACGT".index(alt)] - logits["ACGT".index(ref)])
    assert record.info["CADUCEUS_LLR"][0] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("source", ["tiny", "published"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_embed_track_and_ism_equal_the_python_api_on_the_published_layout(run_cli, tmp_path, request, layout, source):
    published = LAYOUTS[layout][0]
    if source == "published" and not published.is_dir():
        pytest.skip("../shared/conformance not present")
    folder = published if source == "published" else request.getfixturevalue(LAYOUTS[layout][1])
    if source == "published":
        text = json.loads((published / "cases.json").read_text())["strings"]["S512"]
    else:
        text = "".join(np.random.default_rng(4).choice(list("ACGTNacgt"), 512))
    fasta = write_fasta(tmp_path / "g.fa", {"s": text})
    model = load_model(folder)
    logits = api_logits(model, text)

    h5 = tmp_path / "e.h5"
    assert run_cli("embed", fasta, "-m", folder, "--window", 512, "--precision", "float32", "-o", h5, "-q").code == 0
    with h5py.File(h5) as f, torch.inference_mode():
        want = model.embed(torch.from_numpy(model.tokenizer.encode(text))[None])[0].numpy()
        np.testing.assert_allclose(f["embeddings/0"][()], want, atol=1e-5)
        if source == "published":  # the projects' recipe, from the original code in float64
            expected = np.load(published / "expected.npz")["S512__emb"]
            np.testing.assert_allclose(f["embeddings/0"][()], expected, atol=LAYOUTS[layout][2]["hidden"])

    track = tmp_path / "t.bedgraph.gz"
    assert run_cli("track", fasta, "-m", folder, "--window", 512, "-s", "ref-logprob", "-o", track, "-q").code == 0
    with gzip.open(track, "rt") as lines:
        values = {int(line.split()[1]): float(line.split()[3]) for line in lines}
    columns = model.tokenizer.columns(model.tokenizer.encode(text))
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    for pos in (0, 100, 255, 511):
        if columns[pos] >= 0:
            assert values[pos] == pytest.approx(log_probs[pos, columns[pos]], abs=1e-4)
        else:
            assert pos not in values  # N has no value

    table = tmp_path / "ism.tsv"
    result = run_cli("ism", fasta, "-m", folder, "-r", "s:200-260", "--window", 512, "-o", table, "-q")
    assert result.code == 0, result.err
    rows = [line.split("\t") for line in table.read_text().splitlines()[1:]]
    # the unmasked grid tile of positions 0-255 is [-128, 384): 128 N, then the contig's first 384 bases
    tile = api_logits(model, "N" * 128 + text[:384])
    for _, pos, ref, alt, llr, _, _ in rows[:6]:
        row = int(pos) - 1 + 128
        assert float(llr) == pytest.approx(tile[row, "ACGT".index(alt)] - tile[row, "ACGT".index(ref)], abs=1e-4)


@pytest.mark.parametrize(
    ("layout", "name", "length", "mixer"),
    [
        ("plantcaduceus", "PlantCaduceus_l32", "512 (from published checkpoint kuleshov-group/PlantCaduceus_l32)",
         "Mamba-1 (d_inner 16, d_state 8, d_conv 4, dt_rank 1)"),
        ("plantcad2", "PlantCAD2-Small-l24-d0768",
         "8,192 (from published checkpoint kuleshov-group/PlantCAD2-Small-l24-d0768)",
         "Mamba-2 (d_inner 16: 2 heads of 8, 1 group, d_state 8, d_conv 4)"),
    ],
)  # fmt: skip
def test_info_shows_mixer_tokenizer_and_where_the_length_comes_from(run_cli, tmp_path, request, layout, name, length, mixer):
    folder = tmp_path / name  # a local copy named as published
    shutil.copytree(request.getfixturevalue(LAYOUTS[layout][1]), folder)
    result = run_cli("info", folder)
    assert result.code == 0, result.err
    assert "tokenizer.json (BPE of single characters, lowercasing), 7 ids: A=3 C=4 G=5 T=6, N -> 2, [MASK]=1" in result.out
    assert f"training length      {length}" in result.out
    assert f"mixer                {mixer}" in result.out


@pytest.mark.parametrize(
    ("layout", "length", "source"),
    [
        ("plantcaduceus", 512, "the PlantCaduceus family: GPN's tokenizer.json with Mamba1 mixers"),
        ("plantcad2", 8192, "the PlantCAD2 family: GPN's tokenizer.json with Mamba2 mixers"),
    ],
)
def test_a_local_copy_named_otherwise_gets_its_familys_training_length_and_says_so(
    run_cli, tmp_path, request, layout, length, source
):
    folder = tmp_path / "models" / "my-plant-model"  # how clusters keep models: no hub id, any name
    shutil.copytree(request.getfixturevalue(LAYOUTS[layout][1]), folder)
    model = load_model(folder)
    assert (model.default_window, model.window_source) == (length, source)
    fasta = write_fasta(tmp_path / "g.fa", {"c": "ACGT" * 50})
    result = run_cli("embed", fasta, "-m", folder, "--pool", "mean", "--no-per-base", "-o", tmp_path / "e.h5")
    assert result.code == 0, result.err
    assert f"training length {length:,} bases, from {source}" in result.err


def test_sizes_of_a_published_checkpoint_name_it_for_a_copy_named_otherwise(tmp_path):
    from caduceus_cli.model.config import CaduceusConfig
    from caduceus_cli.model.load import training_length

    config = CaduceusConfig(
        d_model=768, n_layer=24, rcps=True, complement_map={3: 6, 4: 5, 5: 4, 6: 3}, vocab_size=8,
        ssm_cfg={"layer": "Mamba2", "d_state": 64, "headdim": 64, "ngroups": 1},
    )  # fmt: skip
    assert training_length(tmp_path, "/data/models/small", config) == (
        8192,
        "the sizes of published checkpoint kuleshov-group/PlantCAD2-Small-l24-d0768 (PS, Mamba2, d_model 768, "
        "24 layers)",
    )


def test_calibrate_and_background_percentiles_run_a_plantcad2_checkpoint(run_cli, tmp_path, plantcad2_checkpoint):
    rng = np.random.default_rng(8)
    contig = "".join(rng.choice(list("ACGT"), 400))
    fasta = write_fasta(tmp_path / "g.fa", {"c": contig})
    background = tmp_path / "bg.tsv.gz"
    result = run_cli("calibrate", fasta, "-m", plantcad2_checkpoint, "-w", 64, "-n", 40, "--max-indel", 2,
                     "-o", background, "-q")  # fmt: skip
    assert result.code == 0, result.err
    alt = "ACGT".replace(contig[199], "")[0]
    vcf = write_vcf(tmp_path / "v.vcf", "c", 400, [(200, contig[199], alt)])
    out = tmp_path / "out.bcf"
    result = run_cli("score-variants", vcf, "--fasta", fasta, "-m", plantcad2_checkpoint, "-w", 64,
                     "--background", background, "-o", out, "-q")  # fmt: skip
    assert result.code == 0, result.err
    with pysam.VariantFile(str(out)) as scored:
        record = next(iter(scored))
    assert 0 <= record.info["CADUCEUS_LLR_PCT"][0] <= 100
