"""Per-base score tracks of FASTA regions: embed's tiled path with logits, scored and written per tile.

    from caduceus_cli.io.tracks import track_writer
    from caduceus_cli.pipelines.track import genome_order, track_regions

    with Fasta("genome.fa") as reference, track_writer(Path("llr-min.bw"), reference.contigs, "bigwig") as bw:
        track_regions(Engine(model), reference, genome_order(all_contigs(reference), reference.contigs),
                      {"llr-min": bw}, window=1024, overlap=128)

Each tile's kept rows of one RC-conjoined pass (`map_tiles`, output "logits") become
`track_scores` of those bases, written behind the model into one `TrackWriter` per score. Tracks
are genome coordinates: regions are read on the forward strand, in FASTA order, and may not overlap.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from caduceus_cli.engine import Engine
from caduceus_cli.errors import InputError
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.regions import Region
from caduceus_cli.io.tracks import ChromSizes, TrackWriter
from caduceus_cli.pipelines.embed import TileKey, map_tiles
from caduceus_cli.scoring import track_scores


def genome_order(regions: Sequence[Region], chrom_sizes: ChromSizes) -> list[Region]:
    """`regions` on the forward strand in FASTA order (contig, then start); an overlap is an InputError."""
    rank = {chrom: rank for rank, chrom in enumerate(chrom_sizes)}
    forward = (dataclasses.replace(region, strand="+") for region in regions)
    ordered = sorted(forward, key=lambda r: (rank[r.chrom], r.start))
    for before, after in itertools.pairwise(ordered):
        if before.chrom == after.chrom and after.start < before.end:
            raise InputError(
                f"regions {before.name} and {after.name} overlap: a track has one value per base; "
                "merge them first (bedtools merge)"
            )
    return ordered


def track_regions(
    engine: Engine,
    reference: Fasta,
    regions: Sequence[Region],
    writers: Mapping[str, TrackWriter],
    window: int,
    overlap: int,
    quiet: bool = True,
) -> tuple[int, float]:
    """Write the TRACK_SCORES named by `writers`' keys of each base of `regions` (`genome_order`).

    Returns (bases, seconds). N bases (and any base whose reference is not A, C, G or T) get no value.
    """
    scores = tuple(writers)

    def write(item: tuple[TileKey, np.ndarray]) -> None:  # on the write-behind thread
        key, logits = item
        start = key.region.start + key.dest.start
        for name, values in track_scores(logits, key.bases, scores).items():
            writers[name].add(key.region.chrom, start, values)

    jobs = list(enumerate(regions))
    return map_tiles(engine, reference, jobs, window, overlap, "logits", "auto", write, quiet, label="track")
