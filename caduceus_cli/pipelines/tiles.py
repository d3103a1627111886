"""Regions of a FASTA through the model, tile by tile: the one data path of `embed` and `track`.

Tiles are read and tokenized ahead of the model (the engine's read-ahead), and each tile's kept
rows go to a consumer on a writer thread (write behind), a bounded number queued, so memory stays
flat whatever the input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from caduceus_cli.engine import Engine, Head, Window
from caduceus_cli.io.fasta import Fasta
from caduceus_cli.io.regions import Region
from caduceus_cli.stages import WriteBehind
from caduceus_cli.terminal import counted, format_rate, progress_bar
from caduceus_cli.tokens import Tokenizer, reverse_complement_text, soft_mask
from caduceus_cli.windows import tile_region

log = logging.getLogger("caduceus")

WRITE_QUEUE_DEPTH = 8  # tiles in flight to the writer: enough to ride out a slow flush, bounded in memory


def map_tiles(
    engine: Engine,
    reference: Fasta,
    jobs: Sequence[tuple[int, Region]],
    *,
    window: int,
    overlap: int,
    head: Head,
    rc: str,
    consume: Callable[[tuple[TileKey, np.ndarray]], None],
    quiet: bool = True,
    with_mask: bool = False,
    label: str = "embed",
) -> tuple[int, float]:
    """Run the tiles of `jobs` ((row, region) pairs) through the engine; each tile's kept rows to `consume`.

    The one data path of `embed` and `track`: tiles are read and tokenized ahead of the model (the
    engine's read-ahead), and `consume` gets `(TileKey, rows)` in order on a writer thread (write
    behind), at most WRITE_QUEUE_DEPTH tiles queued, so memory stays flat whatever the input.
    `head` is the engine's ("embed" or "logits"). Returns (bases, seconds); a progress bar of
    bases, named `label`, shows on a terminal unless `quiet`.
    """
    total = sum(region.end - region.start for _, region in jobs)
    writer = WriteBehind(consume, WRITE_QUEUE_DEPTH)
    started = time.perf_counter()
    written = 0
    try:
        with progress_bar(quiet, "bases") as progress:
            task = progress.add_task(label, total=total, rate="-")
            tokenizer = engine.model.tokenizer
            tiles = _tiles(reference, tokenizer, jobs, window=window, overlap=overlap, with_mask=with_mask)
            for key, rows in engine.map(tiles, head, rc):
                writer.put((key, rows))
                written += len(rows)
                progress.update(
                    task, advance=len(rows), rate=format_rate(written, time.perf_counter() - started)
                )
    finally:
        writer.close()
    elapsed = time.perf_counter() - started
    log.info("%s: %s in %.1f s (%s bases/s)", label, counted(written, "base"), elapsed, format_rate(written, elapsed))
    return written, elapsed


@dataclass(frozen=True, kw_only=True)
class TileKey:
    """What a consumer of `map_tiles` gets with each tile's kept rows: which region, and where in it."""

    row: int  # the region's row (index in the caller's list)
    region: Region
    dest: slice  # the kept rows' place in the region, 5'->3' on its strand
    first: bool
    last: bool
    bases: np.ndarray  # the kept rows' bases as columns 0-3 of A, C, G, T (-1: N), as the model read them
    mask: np.ndarray | None  # soft-mask flags of the kept rows (with_mask), else None


def _tiles(
    reference: Fasta,
    tokenizer: Tokenizer,
    jobs: Sequence[tuple[int, Region]],
    *,
    window: int,
    overlap: int,
    with_mask: bool,
) -> Iterator[Window]:
    """Model windows of the regions still to do, read and tokenized one tile at a time (bounded memory).

    Runs in the engine's read-ahead thread. A '-' region is read 5'->3' on its strand: tile
    [s, e) of the oriented sequence is contig [end - e, end - s), reverse complemented.
    """
    for row, region in jobs:
        tiles = tile_region(region.end - region.start, window, overlap)
        for number, tile in enumerate(tiles):
            if region.strand == "-":
                lo, hi = region.end - tile.end, region.end - tile.start
                seq = reverse_complement_text(reference.fetch(region.chrom, lo, hi))
            else:
                lo, hi = region.start + tile.start, region.start + tile.end
                seq = reference.fetch(region.chrom, lo, hi)
            ids = tokenizer.encode(seq, where=f"{reference.path}: {region.chrom}:{lo + 1}-{hi}")
            mask = soft_mask(seq)[tile.keep] if with_mask else None
            bases = tokenizer.columns(ids[tile.keep])
            key = TileKey(
                row=row, region=region, dest=tile.dest, first=number == 0, last=number == len(tiles) - 1,
                bases=bases, mask=mask,
            )  # fmt: skip
            yield Window(ids=ids, key=key, rows=tile.keep)
