"""`merge_shards`: joining the shard files of a split embed run (the CLI side is in test_embed_cli.py)."""

import numpy as np
import pytest
from test_hdf5 import (
    FULL,
    PROVENANCE,
    REGIONS,
    SETTINGS,
    assert_same_datasets,
    attrs,
    write_file,
    write_regions,
)

from caduceus_cli.errors import InputError
from caduceus_cli.io.hdf5 import EmbeddingFile, ShardInfo, merge_shards


def write_shards(tmp_path, parts, settings=SETTINGS):
    paths = []
    for index, rows in enumerate(parts):
        path = tmp_path / f"shard{index}.h5"
        shard = ShardInfo(index, len(parts), len(REGIONS), np.array(rows))
        regions = [REGIONS[i] for i in rows]
        provenance = {**PROVENANCE, "command_line": f"{PROVENANCE['command_line']} --shard {index + 1}/{len(parts)}"}
        output = EmbeddingFile.create(path, regions, FULL, settings, provenance, shard)
        write_regions(output, regions, range(len(rows)))
        output.finish()
        paths.append(path)
    return paths


def test_merged_shards_equal_a_single_run_and_keep_the_shards_command_lines(tmp_path):
    paths = write_shards(tmp_path, [[0], [1, 2]])
    merge_command = {**PROVENANCE, "command_line": "caduceus merge shard1.h5 shard0.h5 -o merged.h5"}
    merge_shards(paths[::-1], tmp_path / "merged.h5", merge_command)
    write_file(tmp_path / "single.h5")
    assert_same_datasets(tmp_path / "merged.h5", tmp_path / "single.h5")
    merged = attrs(tmp_path / "merged.h5")
    assert list(merged.pop("shard_command_lines")) == [f"{PROVENANCE['command_line']} --shard {i}/2" for i in (1, 2)]
    assert merged == {**attrs(tmp_path / "single.h5"), "command_line": merge_command["command_line"]}


def test_merge_refuses_missing_repeated_or_mismatched_shards(tmp_path):
    paths = write_shards(tmp_path, [[0], [1, 2]])
    with pytest.raises(InputError, match="shard 2/2 is missing"):
        merge_shards(paths[:1], tmp_path / "m.h5", PROVENANCE)
    with pytest.raises(InputError, match=r"shard1.h5: shard 2/2 given twice"):
        merge_shards([paths[1], paths[1]], tmp_path / "m.h5", PROVENANCE)
    other = tmp_path / "other"
    other.mkdir()
    foreign = write_shards(other, [[0], [1, 2]], {**SETTINGS, "model_sha256": "zzz"})
    with pytest.raises(InputError, match="model_sha256 is 'zzz' but 'abc'.*cannot be merged"):
        merge_shards([paths[0], foreign[1]], tmp_path / "m.h5", PROVENANCE)
    (tmp_path / "junk.h5").write_text("junk")
    with pytest.raises(InputError, match="junk.h5: not a readable HDF5 file"):
        merge_shards([paths[0], tmp_path / "junk.h5"], tmp_path / "m.h5", PROVENANCE)
