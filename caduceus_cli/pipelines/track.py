"""`track`: per-base score tracks of FASTA regions, embed's tiled path with logits, scored and written per tile.

`TrackJob` is one run: its regions, scores, tiling and the files it owns (one per score, each
written under a temporary name and renamed when complete):

    with Fasta("genome.fa") as reference:
        job = TrackJob(outputs={"llr-min": Path("llr-min.bw")}, regions=all_contigs(reference), window=1024,
                       overlap=128)
        bases, seconds = job.run(Engine(model), reference)

Each tile's kept rows of one RC-conjoined pass (`map_tiles`, head "logits") become
`track_scores` of those bases, written behind the model into one `TrackWriter` per score. Tracks
are genome coordinates: regions are read on the forward strand, in FASTA order, and may not overlap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caduceus_cli.engine import Engine
from caduceus_cli.errors import InputError
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.htslib import HtslibMessages
from caduceus_cli.io.outputs import claimed
from caduceus_cli.io.regions import Region
from caduceus_cli.io.tracks import ChromSizes, TrackWriter, track_writer
from caduceus_cli.pipelines.tiles import TileKey, map_tiles
from caduceus_cli.scoring.tracks import track_scores
from caduceus_cli.signals import WHOLE_FILES_ONLY, interrupt_says
from caduceus_cli.windows import region_shard

log = logging.getLogger("caduceus")


@dataclass(frozen=True, kw_only=True)
class TrackJob:
    """One `track` run: each score of `outputs` (score -> file) at every base of `regions` (or the
    `shard` (index, count) of them, 0-based, balanced by bases), tiled by `window`/`overlap`, as
    bigWig or bgzipped bedGraph (`track_format`)."""

    outputs: Mapping[str, Path]
    regions: Sequence[Region]
    window: int
    overlap: int
    track_format: str = "bigwig"
    shard: tuple[int, int] | None = None

    def run(self, engine: Engine, reference: Fasta, quiet: bool = True) -> tuple[int, float]:
        """Write the tracks (claimed, each under a temporary name); return (bases, seconds)."""
        regions = genome_order(self.regions, reference.contigs)
        if self.shard is not None:
            regions = [regions[i] for i in region_shard(regions, *self.shard)]
        # libBigWig and htslib print their own lines on a failed write; the error raised says it once
        with (
            interrupt_says(WHOLE_FILES_ONLY.format(outputs=", ".join(map(str, self.outputs.values())))),
            HtslibMessages(),
            claimed(*self.outputs.values()),
            contextlib.ExitStack() as files,
        ):
            writers = {
                name: files.enter_context(track_writer(path, reference.contigs, self.track_format))
                for name, path in self.outputs.items()
            }
            done = track_regions(
                engine, reference, regions, writers, window=self.window, overlap=self.overlap, quiet=quiet
            )
        log.info("wrote %s", ", ".join(map(str, self.outputs.values())))
        return done


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
    *,
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
    return map_tiles(
        engine, reference, jobs, window=window, overlap=overlap, head="logits", rc="auto", consume=write,
        quiet=quiet, label="track",
    )  # fmt: skip
