import itertools

import numpy as np
import pytest

from caduceus_cli.errors import InputError
from caduceus_cli.windows import (
    balanced_shards,
    contiguous_shard,
    default_overlap,
    read_shard_line,
    shard_order,
    tile_region,
    tile_starts,
)

# Every (length, window, overlap) with small numbers: covers regions shorter, equal and longer
# than the window, overlaps of 0 up to window - 1 (several tiles per base), odd and even sizes.
SMALL_CASES = [(n, w, o) for n in range(1, 40) for w in range(1, 14) for o in range(w)]


def owner_by_brute_force(length: int, window: int, overlap: int) -> list[int]:
    """For each base, the tile in which it lies farthest from an edge (earliest on ties)."""
    starts = tile_starts(length, window, overlap)
    size = min(length, window)
    owners = []
    for p in range(length):
        margins = [min(p - s, s + size - 1 - p) if s <= p < s + size else -1 for s in starts]
        owners.append(int(np.argmax(margins)))
    return owners


@pytest.mark.parametrize("length", [1, 5, 100])
def test_region_no_longer_than_window_is_one_unpadded_tile(length):
    (tile,) = tile_region(length, window=100, overlap=10)
    assert (tile.start, tile.end) == (0, length)
    assert tile.keep == slice(0, length) and tile.dest == slice(0, length)


def test_every_base_is_covered_exactly_once_for_all_small_cases():
    for n, w, o in SMALL_CASES:
        coverage = np.zeros(n, dtype=int)
        for tile in tile_region(n, w, o):
            coverage[tile.dest] += 1
        assert (coverage == 1).all(), (n, w, o)


def test_tiles_have_window_length_stay_inside_region_and_keep_matches_dest():
    for n, w, o in SMALL_CASES:
        tiles = tile_region(n, w, o)
        for tile in tiles:
            assert tile.end - tile.start == min(n, w)
            assert tile.start >= 0 and tile.end <= n
            assert tile.keep.stop - tile.keep.start == tile.dest.stop - tile.dest.start > 0
            assert tile.dest.start == tile.start + tile.keep.start
        assert tiles[-1].end == n
        assert [t.dest.start for t in tiles] == sorted(t.dest.start for t in tiles)


def test_each_base_comes_from_the_tile_where_it_is_farthest_from_an_edge():
    for n, w, o in SMALL_CASES:
        owners = np.empty(n, dtype=int)
        for index, tile in enumerate(tile_region(n, w, o)):
            owners[tile.dest] = index
        assert owners.tolist() == owner_by_brute_force(n, w, o), (n, w, o)


def test_stride_is_window_minus_overlap_and_last_tile_is_shifted_back():
    assert tile_starts(1000, 300, 50) == [0, 250, 500, 700]
    tiles = tile_region(1000, 300, 50)
    # Cuts at the midpoints between neighbouring tile centres.
    assert [t.dest for t in tiles] == [slice(0, 275), slice(275, 525), slice(525, 750), slice(750, 1000)]
    assert tiles[1].keep == slice(25, 275)


def test_reassembled_tiles_reproduce_a_position_signal():
    # A tile's rows carry their region positions; putting kept rows at dest must give 0..n-1.
    n, w, o = 10_007, 1_024, 128
    out = np.full(n, -1)
    for tile in tile_region(n, w, o):
        out[tile.dest] = np.arange(tile.start, tile.end)[tile.keep]
    assert (out == np.arange(n)).all()


def test_large_region_tile_count():
    tiles = tile_region(248_956_422, 131_072, default_overlap(131_072))
    assert len(tiles) == -(-(248_956_422 - 131_072) // (131_072 - 16_384)) + 1
    assert sum(t.dest.stop - t.dest.start for t in tiles) == 248_956_422


@pytest.mark.parametrize(("window", "overlap"), [(10, 10), (10, 11), (10, -1), (0, 0)])
def test_impossible_window_and_overlap_are_refused(window, overlap):
    with pytest.raises(ValueError, match="--overlap|--window"):
        tile_region(100, window, overlap)


def test_empty_region_is_refused():
    with pytest.raises(ValueError, match="length 0"):
        tile_region(0, 10, 1)


def test_shards_partition_regions_in_input_order_and_balance_bases():
    lengths = [500, 10, 300, 300, 200, 40, 40, 100]
    parts = balanced_shards(lengths, 3)
    assert sorted(itertools.chain(*parts)) == list(range(len(lengths)))
    assert all(part == sorted(part) for part in parts)
    loads = [sum(lengths[i] for i in part) for part in parts]
    assert max(loads) - min(loads) <= max(lengths) - min(lengths)
    assert parts == [[0], [2, 4], [1, 3, 5, 6, 7]]  # loads 500, 500, 490
    assert balanced_shards(lengths, 3) == parts  # deterministic


def test_more_shards_than_regions_leaves_empty_parts():
    assert balanced_shards([5, 7], 3) == [[1], [0], []]


def test_contiguous_shards_cover_every_item_once_in_order_and_differ_in_size_by_at_most_one():
    for total in (0, 1, 7, 100):
        for count in (1, 3, 8):
            parts = [contiguous_shard(total, (index, count)) for index in range(count)]
            assert [item for part in parts for item in part] == list(range(total))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert contiguous_shard(5, None) == range(5)


def test_shard_order_puts_shards_in_their_order_and_refuses_a_repeated_missing_or_foreign_one():
    assert shard_order([("c", 3, 3), ("a", 1, 3), ("b", 2, 3)]) == [1, 2, 0]
    with pytest.raises(InputError, match=r"^b: shard 1/2 given twice \(also a\)$"):
        shard_order([("a", 1, 2), ("b", 1, 2)])
    with pytest.raises(InputError, match=r"^shard 2/3 is missing from the files to merge$"):
        shard_order([("a", 1, 3), ("c", 3, 3)])
    with pytest.raises(InputError, match=r"^shards of different splits \(N = 2, 3\) cannot be joined$"):
        shard_order([("a", 1, 2), ("b", 2, 3)])


def test_a_shard_line_value_reads_as_index_and_count_and_anything_else_as_none():
    assert read_shard_line("2/3") == (2, 3)
    assert [read_shard_line(value) for value in ("", "2", "2/", "/3", "a/3", "2/3/4", "-1/3")] == [None] * 7
