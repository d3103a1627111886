"""A fake Hugging Face hub for tests: local folders served over HTTP as model repositories.

A test double, not a hub. It answers just the requests huggingface_hub 1.33's `snapshot_download` makes
(point a process at it with HF_ENDPOINT=hub.endpoint):

  GET  /api/models/{repo}/revision/{revision}   repo info: the commit `revision` resolves to
  GET  /api/models/{repo}/tree/{commit}          the file listing, which `allow_patterns` then filters
  HEAD /{repo}/resolve/{commit}/{file}           X-Repo-Commit, ETag and Content-Length of one file
  GET  /{repo}/resolve/{commit}/{file}           its bytes

Each repository has one commit, COMMIT, which the revision "main" names. ETags are what the hub uses: the
sha256 for LFS files (weights) and the git blob id for the others; they name the cache's blobs/ files.
Files are served whole, with no redirect to a CDN and no Xet headers (X-Xet-Hash, xet-auth links) or
`xetHash` in the listing, so the client downloads over plain HTTP. Errors carry the hub's X-Error-Code
header, from which huggingface_hub raises RepositoryNotFoundError, RevisionNotFoundError and
RemoteEntryNotFoundError. Every request is recorded in `requests` as (method, path, status).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".safetensors", ".bin")  # what the hub's default .gitattributes stores in LFS

_REPO_INFO = re.compile(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)")
_TREE = re.compile(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)")
_RESOLVE = re.compile(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)")


def file_entry(path: str, data: bytes) -> dict:
    """One file of the tree listing as the hub writes it: the git blob id, and LFS information for weights."""
    entry = {"type": "file", "path": path, "size": len(data)}
    entry["oid"] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if path.endswith(LFS_SUFFIXES):
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


class FakeHub:
    """`with FakeHub({"owner/name": folder}) as hub:` serves each folder's files at `hub.endpoint`."""

    def __init__(self, repos: dict[str, Path]):
        self.repos = {repo_id: Path(folder) for repo_id, folder in repos.items()}
        self.requests: list[tuple[str, str, int]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def files(self, repo_id: str) -> dict[str, bytes]:
        folder = self.repos[repo_id]
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    def respond(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for one request; the body is sent for GET only."""
        status, headers, body = self._route(path)
        self.requests.append((method, path, status))
        return status, headers, body

    def _route(self, path: str) -> tuple[int, dict[str, str], bytes]:
        for pattern in (_REPO_INFO, _TREE, _RESOLVE):
            match = pattern.fullmatch(path)
            if match:
                break
        else:
            return _error(404, "NotFound", f"{path}: not an endpoint of the fake hub")
        repo_id, revision, *filename = map(unquote, match.groups())
        if repo_id not in self.repos:
            return _error(404, "RepoNotFound", "Repository not found")
        if revision not in ("main", COMMIT):
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = self.files(repo_id)
        if pattern is _REPO_INFO:
            siblings = [{"rfilename": name} for name in files]
            return _json({"id": repo_id, "sha": COMMIT, "private": False, "siblings": siblings})
        if pattern is _TREE:
            return _json([file_entry(name, data) for name, data in files.items()])
        name = filename[0]
        if name not in files:
            status, headers, body = _error(404, "EntryNotFound", f"{name} does not exist at {COMMIT}")
            return status, {**headers, "X-Repo-Commit": COMMIT}, body
        data = files[name]
        entry = file_entry(name, data)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
        return 200, headers, data


def _json(value: object) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(value).encode()


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
    return status, headers, json.dumps({"error": message}).encode()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, send_body: bool) -> None:
            status, headers, body = hub.respond(self.command, urlsplit(self.path).path)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: requests are recorded in hub.requests

    return Handler
