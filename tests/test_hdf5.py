import dataclasses

import h5py
import numpy as np
import pytest

from caduceus_cli.errors import InputError, UsageError
from caduceus_cli.io.hdf5.layout import CHUNK_ROWS, Layout, ShardInfo, compression_filters, regions_digest
from caduceus_cli.io.hdf5.writer import EmbeddingFile
from caduceus_cli.io.regions import Region

D = 8
REGIONS = [
    Region("chr1", 0, 5000, "a", "+"),
    Region("chr2", 10, 20, "b", "-"),
    Region("chr1", 100, 2148, "c", "+"),
]
SETTINGS = {
    "model_source": "tiny",
    "model_sha256": "abc",
    "rc": "auto",
    "window": 1024,
    "overlap": 128,
    "regions_sha256": regions_digest(REGIONS),
}
PROVENANCE = {"tool_version": "0.1.0", "command_line": "caduceus embed x.fa -o out.h5"}
FULL = Layout(d=D, precision="float32", pool=True, bin=300, soft_mask=True)


def values(region: Region) -> np.ndarray:
    rng = np.random.default_rng(region.start)
    return rng.normal(size=(region.end - region.start, D)).astype(np.float32)


def flags(region: Region) -> np.ndarray:
    return (np.arange(region.end - region.start) % 3 == 0).astype(bool)


def write_regions(output: EmbeddingFile, regions, rows, split: int = 700) -> None:
    for row, region in zip(rows, regions, strict=True):
        writer = output.region(row, region.end - region.start)
        data, mask = values(region), flags(region)
        for start in range(0, len(data), split):
            writer.add(data[start : start + split], mask[start : start + split])
        writer.close()


def write_file(path, layout=FULL, split=700, regions=REGIONS):
    output = EmbeddingFile.create(path, regions, layout, SETTINGS, PROVENANCE)
    write_regions(output, regions, range(len(regions)), split)
    output.finish()


def datasets(path) -> dict[str, np.ndarray]:
    found = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda name, obj: found.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None
        )
    return found


def attrs(path) -> dict:
    with h5py.File(path, "r") as h5:
        return dict(h5.attrs)


def assert_same_datasets(a, b):
    left, right = datasets(a), datasets(b)
    assert list(left) == list(right)
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        assert np.array_equal(left[name], right[name]), name


def test_layout_matches_the_documented_one(tmp_path):
    path = tmp_path / "out.h5"
    write_file(path)
    with h5py.File(path, "r") as h5:
        assert list(h5["regions"]) == ["chrom", "name", "strand", "start", "end"]
        assert [s.decode() for s in h5["regions/chrom"][()]] == ["chr1", "chr2", "chr1"]
        assert [s.decode() for s in h5["regions/name"][()]] == ["a", "b", "c"]
        assert [s.decode() for s in h5["regions/strand"][()]] == ["+", "-", "+"]
        assert h5["regions/start"].dtype == np.int64 and h5["regions/start"][()].tolist() == [0, 10, 100]
        assert h5["regions/end"][()].tolist() == [5000, 20, 2148]
        assert list(h5["embeddings"]) == ["0", "1", "2"]
        assert h5["embeddings/0"].shape == (5000, D) and h5["embeddings/0"].dtype == np.float32
        assert h5["embeddings/0"].chunks == (CHUNK_ROWS, D)
        assert h5["embeddings/1"].chunks == (10, D)
        assert h5["binned/0"].shape == (17, D) and h5["binned/2"].shape == (7, D)
        assert h5["pooled"].shape == (3, D)
        assert h5["soft_mask/1"].dtype == np.uint8
        assert "done" not in h5 and "shard" not in h5
        assert h5.attrs["rc"] == "auto" and h5.attrs["window"] == 1024 and h5.attrs["bin"] == 300
        assert h5.attrs["pool"] == "mean" and h5.attrs["precision"] == "float32"
        assert h5.attrs["command_line"] == PROVENANCE["command_line"]


def test_values_pooled_and_binned_means_are_written(tmp_path):
    path = tmp_path / "out.h5"
    write_file(path)
    with h5py.File(path, "r") as h5:
        for i, region in enumerate(REGIONS):
            rows = values(region)
            assert np.array_equal(h5[f"embeddings/{i}"][()], rows)
            np.testing.assert_allclose(h5["pooled"][i], rows.mean(axis=0), atol=1e-6)
            expected_bins = [rows[k : k + 300].mean(axis=0) for k in range(0, len(rows), 300)]
            np.testing.assert_allclose(h5[f"binned/{i}"][()], expected_bins, atol=1e-6)
            assert h5[f"soft_mask/{i}"][()].tolist() == flags(region).astype(int).tolist()


def test_float16_precision_and_no_per_base(tmp_path):
    path = tmp_path / "out.h5"
    write_file(path, Layout(d=D, precision="float16", per_base=False, pool=True))
    with h5py.File(path, "r") as h5:
        assert "embeddings" not in h5 and "binned" not in h5
        assert h5["pooled"].dtype == np.float16
        np.testing.assert_allclose(h5["pooled"][0], values(REGIONS[0]).mean(axis=0), atol=1e-3)


def test_file_bytes_do_not_depend_on_how_rows_arrive(tmp_path):
    write_file(tmp_path / "a.h5", split=700)
    write_file(tmp_path / "b.h5", split=CHUNK_ROWS + 1)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


@pytest.mark.parametrize("codec", ["gzip", "bitshuffle"])
def test_compressed_files_hold_the_same_values(tmp_path, codec):
    if codec == "bitshuffle":
        pytest.importorskip("hdf5plugin")
    write_file(tmp_path / "plain.h5")
    write_file(tmp_path / "packed.h5", dataclasses.replace(FULL, compression=codec))
    plain, packed = datasets(tmp_path / "plain.h5"), datasets(tmp_path / "packed.h5")
    assert all(np.array_equal(plain[name], packed[name]) for name in plain)


def test_unknown_compression_is_a_usage_error():
    with pytest.raises(UsageError, match="--compression lz9: use one of none, gzip, bitshuffle"):
        compression_filters("lz9")


def test_size_estimate_counts_every_stored_value():
    lengths = [1000, 10]
    assert Layout(d=256).estimate_bytes(lengths) == 1010 * 256 * 2
    layout = Layout(d=256, precision="float32", per_base=False, pool=True, bin=128, soft_mask=True)
    assert layout.estimate_bytes(lengths) == (8 + 1) * 256 * 4 + 2 * 256 * 4 + 1010


def interrupted_file(path, done_rows):
    """A partial file as a killed run leaves it: some regions done, one half written."""
    output = EmbeddingFile.create(path, REGIONS, FULL, SETTINGS, PROVENANCE)
    write_regions(output, [REGIONS[i] for i in done_rows], done_rows)
    half = output.region(0, 5000)
    half.add(values(REGIONS[0])[:3000], flags(REGIONS[0])[:3000])
    output.close()


def test_resume_skips_done_regions_and_gives_the_same_datasets(tmp_path):
    partial = tmp_path / "partial.h5"
    interrupted_file(partial, [1, 2])
    output = EmbeddingFile.resume(partial, REGIONS, FULL, SETTINGS)
    assert output.done.tolist() == [False, True, True]
    write_regions(output, [REGIONS[0]], [0])
    output.finish()
    write_file(tmp_path / "whole.h5")
    assert_same_datasets(partial, tmp_path / "whole.h5")
    assert attrs(partial) == attrs(tmp_path / "whole.h5")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"settings": {**SETTINGS, "model_sha256": "def"}}, "model_sha256 was 'abc' and is now 'def'"),
        ({"layout": dataclasses.replace(FULL, precision="float16")}, "precision was 'float32' and is now"),
        ({"regions": REGIONS[:2]}, "the regions differ"),
        ({"shard": ShardInfo(0, 2, 6, np.arange(3))}, "--shard differs"),
    ],
)
def test_resume_refuses_other_settings_model_regions_or_shard(tmp_path, change, message):
    partial = tmp_path / "partial.h5"
    interrupted_file(partial, [1])
    args = {"regions": REGIONS, "layout": FULL, "settings": SETTINGS, "shard": None, **change}
    with pytest.raises(InputError, match=message):
        EmbeddingFile.resume(partial, **args)


def test_resume_of_a_finished_or_broken_file_is_refused(tmp_path):
    write_file(tmp_path / "done.h5")
    with pytest.raises(InputError, match="not a resumable caduceus embed file"):
        EmbeddingFile.resume(tmp_path / "done.h5", REGIONS, FULL, SETTINGS)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="partial file is unreadable"):
        EmbeddingFile.resume(tmp_path / "junk.h5", REGIONS, FULL, SETTINGS)


def test_region_digest_tells_region_lists_apart():
    assert regions_digest(REGIONS) == regions_digest(list(REGIONS))
    assert regions_digest(REGIONS) != regions_digest(REGIONS[::-1])
    assert regions_digest(REGIONS) != regions_digest([Region("chr1", 0, 5000, "a", "-"), *REGIONS[1:]])

