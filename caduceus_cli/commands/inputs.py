"""The reference a command reads, opened with --chrom-map's names, and the tiled commands' regions of it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from caduceus_cli.commands.resolve import parse_shard, tiling
from caduceus_cli.io.contigs import read_chrom_map
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.outputs import claimed
from caduceus_cli.io.regions import Region, input_regions

if TYPE_CHECKING:
    from caduceus_cli.commands.runtime import Runtime


def chrom_map_names(chrom_map: Path | None) -> dict[str, str] | None:
    """--chrom-map's names (input name -> FASTA name), read once: it may be a pipe, and a command may
    open the reference more than once (`open_reference`)."""
    return read_chrom_map(chrom_map) if chrom_map else None


def open_reference(fasta: Path, names: dict[str, str] | None) -> Fasta:
    """The reference FASTA, its contigs also reachable by the input names of `chrom_map_names`."""
    return Fasta(fasta, names)


@dataclass(frozen=True)
class TiledInput:
    """What a tiled command (embed, track) runs over: the opened reference, its regions in input order,
    the tiling, and the shard (index, count; 0-based) of the regions to do, None for all."""

    reference: Fasta
    regions: list[Region]
    window: int
    overlap: int
    shard: tuple[int, int] | None


@contextmanager
def tiled_input(
    fasta: Path,
    runtime: Runtime,
    *,
    regions_bed: Path | None,
    region: list[str] | None,
    chrom_map: Path | None,
    window: int | None,
    overlap: int | None,
    shard: str | None,
    outputs: Sequence[Path],
) -> Iterator[TiledInput]:
    """The preamble of embed and track: --shard parsed, --window and --overlap defaulted from the model's
    training length and checked; then `outputs` claimed and the reference opened, its regions read (-R,
    -r; every contig when neither is given)."""
    shard_part = parse_shard(shard)
    window, overlap = tiling(runtime.trained_window(), window, overlap)
    # claimed before anything is read or deleted: a second run on these outputs refuses at once
    with claimed(*outputs), open_reference(fasta, chrom_map_names(chrom_map)) as reference:
        regions = input_regions(reference, regions_bed, region or [])
        yield TiledInput(reference=reference, regions=regions, window=window, overlap=overlap, shard=shard_part)
