"""Cutting regions into model-sized tiles and putting per-tile results back into per-region order.

A bidirectional model sees the whole window, so a base near a window edge lacks context on one
side. Long regions are therefore tiled with overlap, and each base keeps the value of the tile in
which it lies farthest from an edge ("centre-keep"). Tiles all have the window's length: the last
one is shifted back to end at the region end, never padded or run past it, because padding or a
shorter odd-sized tile would change every output of the model.

Shards (`--shard I/N`) split the work the same way on every node: regions balanced by bases
(embed, track), records or sites in contiguous runs (score-variants, calibrate); `shard_order` is
what merging checks of any kind of shard. A text output's shard records its place under one key,
`SHARD_KEY`: the VCF's `##caduceus_shard=I/N`, the background's `#caduceus_shard=I/N`.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from caduceus_cli.errors import InputError


@dataclass(frozen=True)
class Tile:
    """One model window over a region, in region-relative coordinates.

    `start`/`end` is the span fed to the model; rows `keep` of its output are the bases this tile
    owns and land at `dest` in the region (`keep` is relative to the tile, `dest` to the region).
    """

    start: int
    end: int
    keep: slice
    dest: slice


def tile_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start offsets of the tiles covering a region: stride window - overlap, last one flush with the end."""
    check_tiling(window, overlap)
    if length < 1:
        raise ValueError(f"region length {length}: must be at least 1")
    if length <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, length - window, stride))
    starts.append(length - window)
    return starts


def tile_region(length: int, window: int, overlap: int) -> list[Tile]:
    """Tiles of a region of `length` bases, with the rows each one keeps (every base exactly once).

    A region no longer than the window is one tile at its own length. Otherwise every tile is
    `window` long; since they are equally long, "farthest from an edge" means "nearest the tile
    centre", so the cut between two neighbouring tiles is the midpoint of their centres (a base
    exactly half-way goes to the earlier tile).
    """
    starts = tile_starts(length, window, overlap)
    size = min(length, window)
    # cuts[i] is the first base owned by tile i; base p goes to tile i iff 2p <= s_i + s_{i+1} + size - 1.
    cuts = [0] + [(a + b + size + 1) // 2 for a, b in pairwise(starts)] + [length]
    return [
        Tile(start=s, end=s + size, keep=slice(lo - s, hi - s), dest=slice(lo, hi))
        for s, (lo, hi) in zip(starts, pairwise(cuts), strict=True)
    ]


def check_tiling(window: int, overlap: int) -> None:
    """Reject window/overlap pairs that cannot tile (ValueError; commands report it as a usage error)."""
    if window < 1:
        raise ValueError(f"--window {window}: must be at least 1")
    if not 0 <= overlap < window:
        raise ValueError(f"--overlap {overlap}: must be at least 0 and smaller than --window {window}")


# --window of embed for a model that records no training length (e.g. a fine-tuned model saved
# without its tokenizer files): the length the published Caduceus models were trained at.
FALLBACK_WINDOW = 131_072


def default_overlap(window: int) -> int:
    """The overlap used when none is given: an eighth of the window (see benchmarks/tiling_error.py)."""
    return window // 8


def balanced_shards(lengths: Sequence[int], count: int) -> list[list[int]]:
    """Split region indices into `count` parts of about equal total bases; each part in input order.

    Longest region first onto the currently lightest part (ties: the lower part and the earlier
    region), so the split depends only on the lengths and is the same on every node. A region is
    never split across parts, so a part can be no smaller than the longest region.
    """
    heap = [(0, part) for part in range(count)]  # (bases so far, part), already a valid heap
    parts: list[list[int]] = [[] for _ in range(count)]
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        load, lightest = heapq.heappop(heap)
        parts[lightest].append(index)
        heapq.heappush(heap, (load + lengths[index], lightest))
    return [sorted(part) for part in parts]


def region_shard(regions: Sequence, index: int, count: int) -> list[int]:
    """Indices, in input order, of the regions (anything with .start and .end) in part `index` of
    `count` of balanced_shards: what `--shard I/N` selects."""
    return balanced_shards([r.end - r.start for r in regions], count)[index]


def contiguous_shard(total: int, shard: tuple[int, int] | None) -> range:
    """Items of shard (I, N) (0-based I) of `total` items in order: a contiguous run, the N runs
    near-equal in size, so the shards' outputs joined in order are the single run's output. None: all."""
    if shard is None:
        return range(total)
    index, count = shard
    return range(index * total // count, (index + 1) * total // count)


SHARD_KEY = "caduceus_shard"  # the header key of a shard's place, I/N (1-based I), in VCFs and backgrounds


def read_shard_line(value: str) -> tuple[int, int] | None:
    """(I, N) of the value of a `SHARD_KEY` line, 'I/N'; None when it is not of that form."""
    index, slash, count = value.partition("/")
    if slash and index.isdigit() and count.isdigit():
        return int(index), int(count)
    return None


def shard_order(shards: Sequence[tuple[object, int, int]]) -> list[int]:
    """Positions in `shards`, a (file, I, N) per file with 1-based I, of shards 1, 2, ... N.

    What `caduceus merge` checks of every kind of shard: one split (one N), no shard given twice,
    none missing.
    """
    counts = sorted({count for _, _, count in shards})
    if len(counts) != 1:
        raise InputError(f"shards of different splits (N = {', '.join(map(str, counts))}) cannot be joined")
    (count,) = counts
    by_index: dict[int, int] = {}
    for position, (name, index, _) in enumerate(shards):
        if index in by_index:
            raise InputError(f"{name}: shard {index}/{count} given twice (also {shards[by_index[index]][0]})")
        by_index[index] = position
    missing = sorted(set(range(1, count + 1)) - by_index.keys())
    if missing:
        raise InputError(f"shard {missing[0]}/{count} is missing from the files to merge")
    return [by_index[index] for index in range(1, count + 1)]
