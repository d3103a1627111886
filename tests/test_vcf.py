"""VCF reading, allele classification, header and writing in `caduceus_cli.io.vcf`."""

from __future__ import annotations

import logging
import os

import pysam
import pytest

from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io.vcf import (
    TBI_MAX_POSITION,
    HtslibMessages,
    VcfWriter,
    add_scoring_header,
    count_records,
    index_path,
    needs_csi,
    open_vcf,
    output_format,
    records,
    write_index,
)
from caduceus_cli.io.vcf_info import InfoField

HEADER = (
    "##fileformat=VCFv4.2\n"
    "##contig=<ID=chr1,length=1000>\n"
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\n"
)
RECORDS = [
    "chr1\t10\trs1\tA\tG,T\t50\tPASS\tDP=3\tGT\t0/1\n",
    "chr1\t20\t.\tAC\tA\t.\tq10\tXX=5\tGT\t1|1\n",  # undeclared FILTER and INFO
    "chr2\t5\t.\tG\t<DEL>\t.\t.\t.\tGT\t./.\n",  # undeclared contig, symbolic allele without END
]


def write_text(path, text: str):
    path.write_text(text)
    return str(path)


# --- reading --------------------------------------------------------------------------------


def test_records_stream_in_order_including_undeclared_contigs(tmp_path):
    path = write_text(tmp_path / "in.vcf", HEADER + "".join(RECORDS))
    with HtslibMessages() as messages:
        vcf = open_vcf(path, messages)
        got = [(r.contig, r.pos) for r in records(vcf, path, messages)]
    assert got == [("chr1", 10), ("chr1", 20), ("chr2", 5)]


def test_htslib_warnings_become_log_warnings_once(tmp_path, caplog):
    path = write_text(tmp_path / "in.vcf", HEADER + "".join(RECORDS) + RECORDS[2])
    with caplog.at_level(logging.WARNING, logger="caduceus"), HtslibMessages() as messages:
        vcf = open_vcf(path, messages)
        list(records(vcf, path, messages))
        messages.relay_warnings("in.vcf: ")
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("Contig 'chr2' is not defined" in w for w in warnings) == 1
    assert not any("Missing headers" in w for w in warnings)


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("chr1\tnotanumber\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", "notanumber"),
        ("chr1\t30\t.\tA\n", "record 2 (after chr1:10)"),
    ],
)
def test_a_malformed_line_is_one_input_error_naming_the_record(tmp_path, bad_line, reason):
    path = write_text(tmp_path / "bad.vcf", HEADER + RECORDS[0] + bad_line + RECORDS[0])
    with HtslibMessages() as messages, pytest.raises(InputError) as error:
        vcf = open_vcf(path, messages)
        list(records(vcf, path, messages))
    message = str(error.value)
    assert message.startswith(f"{path}: record 2 (after chr1:10): ")
    assert reason in message and "\n" not in message


def test_missing_and_non_vcf_inputs_are_input_errors(tmp_path):
    with HtslibMessages() as messages:
        with pytest.raises(InputError, match="not found"):
            open_vcf(str(tmp_path / "absent.vcf"), messages)
        with pytest.raises(InputError, match="not a readable VCF"):
            open_vcf(write_text(tmp_path / "x.vcf", "hello\n"), messages)


def test_count_records_gives_the_count_and_contigs(tmp_path):
    path = write_text(tmp_path / "in.vcf", HEADER + "".join(RECORDS))
    with HtslibMessages() as messages:
        assert count_records(path, messages) == (3, {"chr1", "chr2"})


# --- header and writing ---------------------------------------------------------------------

FIELDS = [
    InfoField("CADUCEUS_LLR", "Float", "how it was computed"),
    InfoField("CADUCEUS_FLAG", "String", "why"),
]


def scored_copy(tmp_path, fmt: str, name: str, lines: list[str] = RECORDS):
    """Read `lines`, add a score to each ALT, write them with `fmt`; return the output path."""
    path = write_text(tmp_path / "in.vcf", HEADER + "".join(lines))
    out = str(tmp_path / name)
    with HtslibMessages() as messages:
        vcf = open_vcf(path, messages)
        add_scoring_header(vcf.header, FIELDS, {"caduceus_version": "9.9"}, path)
        writer = VcfWriter(out, fmt, vcf.header, messages)
        for record in records(vcf, path, messages):
            record.info["CADUCEUS_LLR"] = tuple(-1.5 for _ in record.alts)
            writer.write(record)
        writer.close()
    return out


def test_text_output_keeps_every_original_field(tmp_path):
    out = scored_copy(tmp_path, "v", "out.vcf")
    with open(out) as handle:
        lines = handle.read().splitlines()
    body = [line for line in lines if not line.startswith("#")]
    expected = [r.rstrip("\n").split("\t") for r in RECORDS]
    for got, want in zip(body, expected, strict=True):
        fields = got.split("\t")
        assert fields[:7] + fields[8:] == want[:7] + want[8:]
        info = fields[7].split(";")
        assert [item for item in info if not item.startswith("CADUCEUS_")] == [
            i for i in [want[7]] if i != "."
        ]
    assert '##INFO=<ID=CADUCEUS_LLR,Number=A,Type=Float,Description="how it was computed">' in lines
    assert "##caduceus_version=9.9" in lines


def test_score_fields_already_declared_are_refused(tmp_path):
    path = write_text(
        tmp_path / "in.vcf",
        HEADER.replace(
            "##contig", '##INFO=<ID=CADUCEUS_LLR,Number=1,Type=Float,Description="old">\n##contig'
        ),
    )
    with HtslibMessages() as messages:
        vcf = open_vcf(path, messages)
        with pytest.raises(InputError, match="already declares INFO/CADUCEUS_LLR"):
            add_scoring_header(vcf.header, FIELDS, {}, path)


@pytest.mark.parametrize(("fmt", "name", "csi"), [("z", "out.vcf.gz", False), ("b", "out.bcf", True)])
def test_bgzipped_and_bcf_outputs_index_and_answer_region_queries(tmp_path, fmt, name, csi):
    symbolic_on_chr1 = RECORDS[2].replace("chr2\t5", "chr1\t30")
    out = scored_copy(
        tmp_path,
        fmt,
        name,
        [RECORDS[0], RECORDS[1].replace("XX=5", "DP=5").replace("q10", "PASS"), symbolic_on_chr1],
    )
    index = index_path(out, csi)
    with HtslibMessages() as messages:
        write_index(out, index, csi)
        assert not messages.relay_warnings()
    with pysam.VariantFile(out, index_filename=index) as vcf:
        hits = [(r.pos, r.info["CADUCEUS_LLR"]) for r in vcf.fetch("chr1", 15, 25)]
    assert hits == [(20, (-1.5,))]


def test_bcf_output_of_undeclared_tags_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="BCF output needs every contig, INFO and FORMAT tag declared"):
        scored_copy(tmp_path, "b", "out.bcf")


def test_output_format_from_option_or_extension():
    assert output_format(None, None) == "v"
    assert output_format("-", "z") == "z"
    assert output_format("a.vcf.gz", None) == "z"
    assert output_format("a.VCF.BGZ", None) == "z"
    assert output_format("a.bcf", None) == "b"
    assert output_format("a.vcf", None) == "v"
    with pytest.raises(UsageError, match="-O u: use v"):
        output_format("a.vcf", "u")


def test_csi_for_bcf_and_beyond_512_mbp():
    assert not needs_csi("z", [1000, None], 1000)
    assert needs_csi("b", [1000], 1000)
    assert needs_csi("z", [TBI_MAX_POSITION + 1], 10)
    assert needs_csi("z", [None], TBI_MAX_POSITION + 1)


def test_unsorted_input_is_refused_when_indexing(tmp_path):
    path = write_text(tmp_path / "in.vcf", HEADER + RECORDS[1] + RECORDS[0])
    with HtslibMessages() as messages:
        vcf = open_vcf(path, messages)
        writer = VcfWriter(os.devnull, "v", vcf.header, messages, sorted_check=True)
        with pytest.raises(InputError, match="chr1:10 comes after chr1:20"):
            for record in records(vcf, path, messages):
                writer.write(record)
        writer.close()
