"""`ModelIdentity`: one record of which model made an output, rendered the same way in every format."""

from __future__ import annotations

import random

import h5py
import pysam
import pytest
import torch

from caduceus_cli.io.backgrounds import read_background
from caduceus_cli.model.identity import ModelIdentity
from caduceus_cli.model.load import load_model

PS = ModelIdentity(source="kuleshov-group/x", revision="abc123", sha256="f" * 64, variant="ps", dtype="float32")


def test_identity_of_a_loaded_model_names_its_checkpoint_variant_and_dtype(ph_checkpoint):
    model = load_model(ph_checkpoint, dtype=torch.float64)
    identity = ModelIdentity.of(model)
    assert identity == ModelIdentity(
        source=str(ph_checkpoint),
        revision="none",
        sha256=model.provenance["sha256"],
        variant="ph",
        dtype="float64",
    )


def test_identity_renders_fields_vcf_meta_and_text():
    assert PS.fields() == {
        "model_source": "kuleshov-group/x",
        "model_revision": "abc123",
        "model_sha256": "f" * 64,
        "model_variant": "ps",
    }
    assert PS.vcf_meta(1024, None) == f"source=kuleshov-group/x;revision=abc123;sha256={'f' * 64};variant=ps;window=1024"
    assert PS.vcf_meta(512, 255).endswith(";window=512;variant_index=255")
    assert PS.text() == "kuleshov-group/x (revision abc123, sha256 ffffffffffff)"
    assert PS.rc.startswith("RC-conjoined in one pass (PS model")


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    path = tmp_path_factory.mktemp("identity") / "g.fa"
    path.write_text(">chr1\n" + "".join(random.Random(1).choices("ACGT", k=400)) + "\n")
    return path


def test_every_output_records_the_same_identity(run_cli, tmp_path, genome, ph_checkpoint):
    """embed's HDF5 attributes, score-variants' ##caduceus_model line and calibrate's background header
    all say the same model."""
    identity = ModelIdentity.of(load_model(ph_checkpoint))
    vcf = tmp_path / "in.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    model = ("--model", ph_checkpoint, "-q")
    assert run_cli("embed", genome, "-r", "chr1:1-64", "-o", tmp_path / "e.h5", *model).code == 0
    assert run_cli("score-variants", vcf, "--fasta", genome, "-w", 64, "-o", tmp_path / "s.vcf", *model).code == 0
    assert run_cli("calibrate", genome, "-n", 2, "-w", 64, "-o", tmp_path / "b.tsv.gz", *model).code == 0
    with h5py.File(tmp_path / "e.h5") as h5:
        assert {key: h5.attrs[key] for key in identity.fields()} == identity.fields()
        assert h5.attrs["dtype"] == identity.dtype
    with pysam.VariantFile(str(tmp_path / "s.vcf")) as scored:
        (line,) = [r.value for r in scored.header.records if r.key == "caduceus_model"]
    assert line == identity.vcf_meta(64, None)
    meta = read_background(tmp_path / "b.tsv.gz").meta
    assert {key: meta[key] for key in identity.fields()} == identity.fields()
    assert (meta["dtype"], meta["rc"]) == (identity.dtype, identity.rc)
