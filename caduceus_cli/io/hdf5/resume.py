"""Whether an interrupted embed's partial file can be resumed, and how far it got."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py

from caduceus_cli.errors import InputError
from caduceus_cli.io.hdf5.files import open_file
from caduceus_cli.io.hdf5.layout import (
    RegionLike,
    ShardInfo,
    plain,
    read_regions,
    region_columns,
    stored_settings,
)


def check_resumable(
    path: Path,
    h5: h5py.File,
    regions: Sequence[RegionLike],
    settings: Mapping[str, object],
    shard: ShardInfo | None,
) -> None:
    """Refuse (InputError) to resume `h5` unless it is an unfinished, undamaged file started with these
    settings (layout included), regions and shard."""
    if "done" not in h5:
        raise InputError(f"{path}: not a resumable caduceus embed file; run without --resume")
    damage = damage_found(h5)
    if damage:
        raise InputError(f"{path}: cannot resume, the partial file is damaged ({damage}); run without --resume")
    stored = stored_settings(h5)
    for key, value in settings.items():
        if stored.get(key) != plain(value):
            raise InputError(
                f"{path}: cannot resume, {key} was {stored.get(key)!r} and is now {value!r}; "
                "use the same model and options, or start again without --resume"
            )
    if read_regions(h5) != region_columns(regions):
        raise InputError(f"{path}: cannot resume, the regions differ from the interrupted run's")
    stored_shard = (
        None if "shard" not in h5 else (int(h5.attrs["shard_index"]) - 1, int(h5.attrs["shard_count"]))
    )
    if stored_shard != (None if shard is None else (shard.index, shard.count)):
        raise InputError(f"{path}: cannot resume, --shard differs from the interrupted run's")


def damage_found(h5: h5py.File) -> str:
    """What is wrong with a file whose every object header cannot be read ('' when nothing): a write
    that failed outside the room check (a quota, an I/O error) can leave a partial file so."""
    try:
        h5.visit(lambda name: None)
    except (OSError, RuntimeError, KeyError) as err:
        return str(err)
    return ""


def partial_progress(path: Path) -> tuple[int, int] | None:
    """(regions done, regions) of an interrupted run's partial file; None when it cannot be read as one."""
    try:
        with open_file(path, "r") as h5:
            done = h5["done"][()] if "done" in h5 and not damage_found(h5) else None
    except OSError:
        return None
    return None if done is None else (int(done.astype(bool).sum()), len(done))
