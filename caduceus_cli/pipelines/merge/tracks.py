"""Track shards (`track --shard I/N`, bigWig or bedGraph): disjoint sets of bases, joined in FASTA order."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from pathlib import Path

from caduceus_cli.io.tracks import ChromSizes, read_track, track_writer


def merge_tracks(shards: Sequence[Path], path: Path, chrom_sizes: ChromSizes, fmt: str) -> None:
    """Join the track shards of one sharded run (disjoint bases each, any split) into `path`.

    Values are merged in FASTA order and written by the same writer, so the file holds exactly
    what an unsharded run writes; shards that overlap are an error (the writer's order check).
    """
    rank = {chrom: rank for rank, chrom in enumerate(chrom_sizes)}
    streams = [read_track(shard, chrom_sizes, fmt) for shard in shards]
    with track_writer(path, chrom_sizes, fmt) as writer:
        for chrom, start, values in heapq.merge(*streams, key=lambda s: (rank.get(s[0], -1), s[1])):
            writer.add(chrom, start, values)
