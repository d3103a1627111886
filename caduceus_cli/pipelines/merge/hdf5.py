"""embed shards (`--shard I/N`, HDF5): each holds its rows' global region indices (`/shard/index`) and
its place as root attributes; joined, they are the file a single run writes (`io.hdf5.layout`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py

from caduceus_cli.errors import InputError
from caduceus_cli.io.hdf5.files import abandon, close_written, open_file
from caduceus_cli.io.hdf5.layout import (
    PER_REGION_GROUPS,
    REGION_ROW_BYTES,
    read_regions,
    stored_settings,
    write_regions,
)
from caduceus_cli.io.outputs import ensure_space
from caduceus_cli.windows import shard_order


def merge_embeddings(inputs: Sequence[Path], output: Path, provenance: Mapping[str, object]) -> None:
    """Join the complete shard files of one split embed run into the layout a single run writes.

    Refuses files from different models, settings or region lists, missing or repeated shards,
    and unfinished files. Per-region datasets are copied as stored (no recompression). The
    shards' command lines are kept, in shard order, as `shard_command_lines`.
    """
    shards: list[h5py.File] = []
    try:
        for path in inputs:
            try:
                shards.append(open_file(path, "r"))
            except OSError as err:
                raise InputError(f"{path}: not a readable HDF5 file ({err})") from None
        order = _check_shards(inputs, shards)
        ensure_space(output, REGION_ROW_BYTES * len(order))
        out = open_file(output, "w")
        try:
            _write_merged(out, shards, order, provenance)
        except BaseException:
            abandon(out, output)
            raise
        close_written(out, output)
    finally:
        for h5 in shards:
            h5.close()


def _check_shards(inputs: Sequence[Path], shards: Sequence[h5py.File]) -> list[tuple[int, int]]:
    """Validate the shard set; return, per global region index, (shard position, row in that shard)."""
    first_path, first = inputs[0], shards[0]
    expected = stored_settings(first)
    owner: list[tuple[int, int] | None] = []
    for position, (path, h5) in enumerate(zip(inputs, shards, strict=True)):
        if "shard" not in h5:
            raise InputError(f"{path}: not a shard file (written without --shard); nothing to merge")
        if "done" in h5:
            raise InputError(f"{path}: unfinished shard (its run did not complete); rerun it with --resume")
        settings = stored_settings(h5)
        for key in sorted(expected.keys() | settings.keys()):
            if settings.get(key) != expected.get(key):
                raise InputError(
                    f"{path}: {key} is {settings.get(key)!r} but {expected.get(key)!r} in {first_path}; "
                    "shards of different runs cannot be merged"
                )
        count, total = int(h5.attrs["shard_count"]), int(h5.attrs["total_regions"])
        if (count, total) != (int(first.attrs["shard_count"]), int(first.attrs["total_regions"])):
            raise InputError(f"{path}: shard of a {count}-way split of {total} regions, unlike {first_path}")
        if not owner:
            owner = [None] * total
        for row, global_index in enumerate(h5["shard/index"][()].tolist()):
            owner[global_index] = (position, row)
    shard_order([(path, int(h5.attrs["shard_index"]), count) for path, h5 in zip(inputs, shards, strict=True)])
    return owner


def _write_merged(
    out: h5py.File,
    shards: Sequence[h5py.File],
    order: list[tuple[int, int]],
    provenance: Mapping[str, object],
) -> None:
    out.attrs.update({**provenance, **stored_settings(shards[0])})
    by_index = sorted(shards, key=lambda h5: int(h5.attrs["shard_index"]))
    out.attrs["shard_command_lines"] = [str(h5.attrs.get("command_line", "")) for h5 in by_index]
    columns = [read_regions(h5) for h5 in shards]
    write_regions(out, {key: [columns[s][key][row] for s, row in order] for key in columns[0]})
    groups = [name for name in PER_REGION_GROUPS if name in shards[0]]
    for name in groups:
        out.create_group(name, track_order=True)
    for global_index, (s, row) in enumerate(order):
        datasets = [shards[s][name][str(row)] for name in groups]
        ensure_space(Path(out.filename), sum(dataset.id.get_storage_size() for dataset in datasets))
        for name, dataset in zip(groups, datasets, strict=True):
            out.copy(dataset, out[name], name=str(global_index))
    if "pooled" in shards[0]:
        pooled = shards[0]["pooled"]
        merged = out.create_dataset(
            "pooled", shape=(len(order), pooled.shape[1]), dtype=pooled.dtype, track_times=False
        )
        for global_index, (s, row) in enumerate(order):
            merged[global_index] = shards[s]["pooled"][row]
