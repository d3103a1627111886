"""calibrate shards (`--shard I/N`, gzipped backgrounds): each holds `#caduceus_shard=I/N` and a
contiguous run of sites, so the shards' rows in --shard order are the single run's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from caduceus_cli.errors import InputError
from caduceus_cli.io.backgrounds import (
    COMMAND_KEY,
    BackgroundWriter,
    background_rows,
    column_scores,
    read_header,
)
from caduceus_cli.io.tables import table_output
from caduceus_cli.windows import SHARD_KEY, read_shard_line, shard_order


def merge_backgrounds(paths: Sequence[Path], output: Path, command: str) -> int:
    """Join the shards of one `calibrate --shard I/N` run, in --shard order, into the background the
    single run writes (its command line: `command`); return the number of variants.

    A missing or repeated shard, shards of different splits, and shards whose headers differ (another
    model, window, genome, seed or sample) are errors, before anything is written."""
    headers = [(path, *read_header(path)) for path in paths]
    ordered = [headers[index] for index in _shard_order([(path, meta) for path, meta, _ in headers])]
    first, first_meta, first_columns = ordered[0]
    for path, meta, columns in ordered[1:]:
        for key in dict.fromkeys([*first_meta, *meta]):
            if key not in (COMMAND_KEY, SHARD_KEY) and meta.get(key) != first_meta.get(key):
                raise InputError(
                    f"{path}: {key} is {meta.get(key)!r}, in {first} {first_meta.get(key)!r}; "
                    "shards of different runs cannot be joined"
                )
        if columns != first_columns:
            raise InputError(f"{path}: its columns differ from {first}'s")
    merged = {key: value for key, value in first_meta.items() if key != SHARD_KEY}
    merged[COMMAND_KEY] = command
    count = 0
    with table_output(output) as stream:
        BackgroundWriter(stream, merged, column_scores(first_columns))
        for path, _, _ in ordered:
            with background_rows(path) as rows:
                for row in rows:
                    stream.write(row)
                    count += 1
    return count


def _shard_order(metas: Sequence[tuple[Path, Mapping[str, str]]]) -> list[int]:
    """Positions in `metas` of shards 1, 2, ... N (`windows.shard_order`); a file that is no shard is an error."""
    shards = []
    for path, meta in metas:
        shard = read_shard_line(meta.get(SHARD_KEY, ""))
        if shard is None:
            raise InputError(f"{path}: not a shard of a background (no #{SHARD_KEY}=I/N line)")
        shards.append((path, *shard))
    return shard_order(shards)
