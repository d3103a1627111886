"""score-variants shards (`--shard I/N`, VCF, VCF.gz or BCF): each holds `##caduceus_shard=I/N` and a
contiguous run of records, so the shards' records in --shard order are the single run's."""

from __future__ import annotations

from collections.abc import Sequence

import pysam

from caduceus_cli.errors import InputError
from caduceus_cli.io.vcf import COMMAND_KEY, HtslibMessages, VcfWriter, open_vcf, records
from caduceus_cli.windows import SHARD_KEY, read_shard_line, shard_order


def vcf_shards_in_order(paths: Sequence[str], messages: HtslibMessages) -> tuple[list[str], pysam.VariantHeader]:
    """The shard files in --shard order (from each `##caduceus_shard`) and the single run's header.

    A missing or repeated shard, shards of different splits, and a header that differs from the
    first shard's (other than the command and shard lines: another model, window or score set) are
    errors. The header returned is the first shard's without its shard line.
    """
    headers = {}
    for path in paths:
        with open_vcf(path, messages) as vcf:
            headers[path] = vcf.header.copy()
    ordered = [paths[position] for position in shard_order([(path, *_vcf_shard(path, headers[path])) for path in paths])]
    expected = _compared_lines(headers[ordered[0]])
    for path in ordered[1:]:
        got = _compared_lines(headers[path])
        for want, line in zip(expected, got, strict=False):
            if want != line:
                raise InputError(f"{path}: header line {line!r} differs from {ordered[0]} ({want!r})")
        if len(got) != len(expected):
            raise InputError(f"{path}: header has a different number of lines than {ordered[0]}")
    header = headers[ordered[0]]
    for line in [line for line in header.records if line.key == SHARD_KEY]:
        line.remove()
    return ordered, header


def join_vcf_shards(ordered: Sequence[str], writer: VcfWriter, messages: HtslibMessages) -> int:
    """Write the records of the shards, in the order given; return how many."""
    count = 0
    for path in ordered:
        with open_vcf(path, messages) as vcf:
            for record in records(vcf, path, messages):
                writer.write(record)
                count += 1
    return count


def _vcf_shard(path: str, header: pysam.VariantHeader) -> tuple[int, int]:
    """(I, N) of the file's ##caduceus_shard line."""
    for line in header.records:
        if line.key == SHARD_KEY and (shard := read_shard_line(line.value)) is not None:
            return shard
    raise InputError(f"{path}: no ##{SHARD_KEY}=I/N line; not a score-variants --shard output")


def _compared_lines(header: pysam.VariantHeader) -> list[str]:
    skipped = (f"##{COMMAND_KEY}=", f"##{SHARD_KEY}=")
    return [line for line in str(header).splitlines() if not line.startswith(skipped)]
