"""`caduceus download` over the real huggingface_hub download path, against a fake hub on 127.0.0.1
(tests/fakehub.py), and what it leaves in the Hugging Face cache; no network is used.

huggingface_hub reads HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE when it is imported, so each run is
a fresh `caduceus` process with its own environment (seconds each, nearly all of it importing torch).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFORMANCE, make_checkpoint
from fakehub import COMMIT, FakeHub, file_entry

CADUCEUS = [sys.executable, "-c", "from caduceus_cli.cli import main; main()"]
CHECKPOINT_FILES = {"config.json", "model.safetensors", "tokenizer_config.json"}
PLANTCAD = CONFORMANCE / "plantcad_d48_l2"  # PlantCaduceus' published file layout, with a .bin
PLANTCAD_FILES = {
    "config.json",
    "pytorch_model.bin",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
}


def caduceus(cache: Path, endpoint: str, *args: str, offline: bool = False) -> subprocess.CompletedProcess:
    """`caduceus ARGS` in a fresh process whose Hugging Face cache is `cache` and whose hub is `endpoint`;
    no token, proxy or other HF_* setting of the calling environment leaks in."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("HF_", "HUGGING")) and "PROXY" not in name.upper()
    }
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(cache.parent),
        HF_HUB_CACHE=str(cache),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1",
    )
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([*CADUCEUS, *args], env=env, capture_output=True, text=True, timeout=120)


def blob_name(path: Path) -> str:
    """The name the cache gives a file's blob: the ETag the hub serves it with."""
    entry = file_entry(path.name, path.read_bytes())
    return entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]


@pytest.fixture
def closed_endpoint():
    """A hub address where nothing listens: a port bound, but not listening, refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory):
    """`caduceus download owner/name` of a tiny checkpoint (plus a README.md it does not need) from a fake
    hub that is stopped afterwards: (the repository folder, the cache, the run, the hub's request log)."""
    tmp = tmp_path_factory.mktemp("download")
    repo = make_checkpoint(tmp / "repo", "ph", seed=5, max_length=1024, d_model=8, n_layer=1)
    (repo / "README.md").write_text("# a model card, not part of the checkpoint\n")
    cache = tmp / "hf" / "hub"
    with FakeHub({"owner/name": repo}) as hub:
        run = caduceus(cache, hub.endpoint, "download", "owner/name")
    return repo, cache, run, hub.requests


def test_download_puts_the_checkpoint_files_in_the_standard_cache_layout(downloaded):
    repo, cache, run, requests = downloaded
    assert run.returncode == 0, run.stderr
    storage = cache / "models--owner--name"
    snapshot = storage / "snapshots" / COMMIT
    lines = run.stdout.splitlines()
    assert lines[0] == f"owner/name revision {COMMIT}: {snapshot}"
    assert lines[1].startswith("loads: PH, d_model 8, 1 layers, ")
    assert "training length 1,024" in lines[1]
    assert f"  export HF_HUB_CACHE={cache}" in lines
    assert "  export HF_HUB_OFFLINE=1" in lines
    assert f"--model owner/name --revision {COMMIT} " in run.stdout
    # the standard layout: refs/main names the commit, the snapshot links each file to its blob
    assert (storage / "refs" / "main").read_text() == COMMIT
    assert {p.name for p in snapshot.iterdir()} == CHECKPOINT_FILES  # README.md left out
    for name in CHECKPOINT_FILES:
        link = snapshot / name
        assert link.is_symlink() and link.resolve() == storage / "blobs" / blob_name(repo / name)
        assert link.read_bytes() == (repo / name).read_bytes()
    assert {p.name for p in (storage / "blobs").iterdir()} == {blob_name(repo / n) for n in CHECKPOINT_FILES}
    # every request was one the fake hub serves (none tried Xet or another endpoint), and only the
    # checkpoint's files were fetched
    assert [(method, path) for method, path, status in requests if status != 200] == []
    downloads = [path for method, path, _ in requests if method == "GET" and "/resolve/" in path]
    assert {path.rsplit("/", 1)[1] for path in downloads} == CHECKPOINT_FILES


def test_a_downloaded_model_loads_offline_from_the_cache_alone(downloaded, closed_endpoint):
    repo, cache, _, _ = downloaded  # its hub is stopped
    run = caduceus(cache, closed_endpoint, "info", "owner/name", offline=True)
    assert run.returncode == 0, run.stderr
    rows = dict(line.split("  ", 1) for line in run.stdout.splitlines())
    assert rows["source"].strip() == "owner/name"
    assert rows["revision"].strip() == COMMIT
    weights = (repo / "model.safetensors").read_bytes()
    assert rows["weights sha256"].strip() == hashlib.sha256(weights).hexdigest()
    assert rows["training length"].strip().startswith("1,024")


@pytest.mark.skipif(not PLANTCAD.is_dir(), reason=f"no {PLANTCAD}")
def test_download_fetches_pytorch_model_bin_when_the_repository_has_no_safetensors(tmp_path):
    """PlantCaduceus' layout; the same command then works offline, with the hub stopped."""
    cache = tmp_path / "hf" / "hub"
    with FakeHub({"plant/caduceus-bin": PLANTCAD}) as hub:
        run = caduceus(cache, hub.endpoint, "download", "plant/caduceus-bin")
    assert run.returncode == 0, run.stderr
    snapshot = cache / "models--plant--caduceus-bin" / "snapshots" / COMMIT
    assert run.stdout.splitlines()[0] == f"plant/caduceus-bin revision {COMMIT}: {snapshot}"
    assert "loads: PS, d_model 48, 2 layers, " in run.stdout
    assert "tokenizer tokenizer.json" in run.stdout
    assert {p.name for p in snapshot.iterdir()} == PLANTCAD_FILES  # not cases.json, expected.npz beside them
    weights = (PLANTCAD / "pytorch_model.bin").read_bytes()
    assert (snapshot / "pytorch_model.bin").resolve().name == hashlib.sha256(weights).hexdigest()
    assert (snapshot / "pytorch_model.bin").read_bytes() == weights
    # offline, fetch's second look (with the .bin) is answered from the cache too
    again = caduceus(cache, hub.endpoint, "download", "plant/caduceus-bin", offline=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout == run.stdout


def test_download_of_an_unknown_repository_names_it_in_one_line(tmp_path):
    with FakeHub({}) as hub:
        run = caduceus(tmp_path / "hf" / "hub", hub.endpoint, "download", "nobody/nothing")
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("caduceus: error: nobody/nothing: ")
    assert "no such model on the Hugging Face hub" in run.stderr
    assert hub.requests == [("GET", "/api/models/nobody/nothing/revision/main", 404)]


def test_download_with_the_hub_unreachable_and_nothing_cached_says_so(tmp_path, closed_endpoint):
    run = caduceus(tmp_path / "hf" / "hub", closed_endpoint, "download", "owner/name")
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("caduceus: error: owner/name: not in the Hugging Face cache and ")
    assert "the hub cannot be reached" in run.stderr


def test_download_offline_with_nothing_cached_says_hf_hub_offline_is_set(tmp_path, closed_endpoint):
    run = caduceus(tmp_path / "hf" / "hub", closed_endpoint, "download", "owner/name", offline=True)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("caduceus: error: owner/name: not in the Hugging Face cache and ")
    assert "HF_HUB_OFFLINE is set" in run.stderr
    assert "caduceus download owner/name" in run.stderr  # how to fix it


@pytest.mark.parametrize(
    ("given", "line"),
    [
        (
            "not-a-hub-id",
            "not-a-hub-id: not a hub id; give owner/name, e.g. kuleshov-group/PlantCaduceus_l32 "
            "(caduceus models lists them)",
        ),
        (
            "./weights",
            "./weights: a local path; download takes a hub id (owner/name), and a local checkpoint needs no "
            "download: pass it as --model ./weights",
        ),
    ],
)
def test_download_refuses_what_is_no_hub_id_before_asking_the_hub(run_cli, monkeypatch, given, line):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # where ./weights is the shipped model's folder
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing may be asked of a hub
    assert run_cli("download", given) == (1, "", f"caduceus: error: {line}\n")
