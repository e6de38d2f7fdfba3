"""An in-memory stand-in for the Hugging Face Hub HTTP API, for tests that must not touch the network.

    with LocalHub() as hub:
        api = HfApi(endpoint=hub.url, token="test-token")
        api.create_repo("org/name", exist_ok=True)
        api.upload_folder(repo_id="org/name", folder_path=directory)
        snapshot_download("org/name", endpoint=hub.url, cache_dir=cache)   # or HF_ENDPOINT=hub.url
        assert hub.files("org/name") == {...}
        assert ("POST", "/api/models/org/name/commit/main") in hub.requests

Only model repositories and only what huggingface_hub 2.4 sends for ``create_repo``, ``create_branch``,
``upload_folder``/``create_commit`` (including ``/api/validate-yaml`` for a README.md, which accepts any
metadata), ``repo_info``/``model_info``, ``list_repo_tree``, ``list_repo_refs``, ``hf_hub_download`` and
``snapshot_download`` are imitated.
The preupload endpoint answers ``"regular"`` for every file, so uploads go inline (base64 in the
commit's ndjson payload) and neither the LFS nor the Xet protocol is ever used; downloads are
plain ``/resolve`` GETs because the responses carry no ``X-Xet-Hash`` header. Any other request
gets a plain 404 (and is still recorded in ``requests``, so a test can see it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

JsonBody = dict[str, Any] | list[Any]


def _git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (`git hash-object`): the Hub's ETag and tree ``oid`` of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    """A timestamp in the Hub's format, the one `huggingface_hub.utils.parse_datetime` reads."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _HubError(Exception):
    """An error answer. ``code`` goes in ``X-Error-Code``, which `hf_raise_for_status` maps to an exception
    class (RepoNotFound -> RepositoryNotFoundError, RevisionNotFound -> RevisionNotFoundError,
    EntryNotFound -> RemoteEntryNotFoundError); without a code the client raises a plain HfHubHTTPError."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


@dataclass
class _Commit:
    files: dict[str, bytes]
    date: str
    summary: str
    parent: str | None


@dataclass
class _Repo:
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> commit sha
    commits: dict[str, _Commit] = field(default_factory=dict)  # commit sha -> snapshot


@dataclass
class _Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json(payload: JsonBody, status: int = 200) -> _Response:
    return _Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


class LocalHub:
    """Imitates the Hugging Face Hub endpoints that huggingface_hub 2.4 uses for ``create_repo``,
    ``create_branch``, ``upload_folder`` and ``snapshot_download``/``hf_hub_download`` (model repos only).

    State lives in memory: each repository has branches pointing at commits, each commit holds the full
    file set (a new branch starts from main's head, or from ``startingPoint``), and every commit, including
    the initial (empty) one made by ``create_repo``, gets a fresh 40-hex sha. Writes, and reads of private
    repositories, need an ``Authorization: Bearer ...`` header (any token is accepted). ``requests`` records
    ``(method, path)`` of every request, the path as sent (percent-encoded) without its query string.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self._repos: dict[str, _Repo] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public API

    @property
    def url(self) -> str:
        """The endpoint, e.g. ``http://127.0.0.1:54321``; for ``HfApi(endpoint=...)`` or ``HF_ENDPOINT``."""
        if self._server is None:
            raise RuntimeError("LocalHub is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision`` (a branch or a commit sha): path in repo -> content.
        Raises KeyError for an unknown repository or revision."""
        with self._lock:
            repo = self._repos[repo_id]
            sha = repo.branches.get(revision, revision)
            return dict(repo.commits[sha].files)

    def __enter__(self) -> LocalHub:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True  # keep-alive connections must not block shutdown
        server.hub = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="LocalHub", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    # ------------------------------------------------------------------ routing

    def _handle(self, method: str, raw_path: str, query: dict[str, list[str]], headers: Message,
                body: bytes) -> _Response:
        # Split before unquoting: a revision such as "refs/pr/1" arrives as the single segment "refs%2Fpr%2F1".
        parts = [unquote(part) for part in raw_path.strip("/").split("/")]
        authorized = (headers.get("Authorization") or "").startswith("Bearer ")
        with self._lock:  # the state is small; one lock for the whole request keeps it consistent
            if parts == ["api", "repos", "create"] and method == "POST":
                return self._create_repo(_loads(body), authorized)
            if parts == ["api", "validate-yaml"] and method == "POST":  # upload_folder sends README.md's text
                return _json({"errors": [], "warnings": []})  # the metadata is not checked
            if len(parts) >= 4 and parts[:2] == ["api", "models"]:
                return self._api(method, f"{parts[2]}/{parts[3]}", parts[4:], query, body, authorized)
            if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
                return self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), headers, authorized)
        raise _HubError(404, f"LocalHub does not imitate {method} {raw_path}")

    def _api(self, method: str, repo_id: str, rest: list[str], query: dict[str, list[str]], body: bytes,
             authorized: bool) -> _Response:
        repo = self._repo(repo_id, authorized)
        action = rest[0] if rest else "revision"
        if method == "GET" and action == "revision" and len(rest) in (0, 2):
            return self._model_info(repo_id, repo, rest[1] if rest else "main", "blobs" in query)
        if method == "GET" and action == "tree" and len(rest) >= 2:
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._tree(repo, rest[1], "/".join(rest[2:]), recursive)
        if method == "GET" and rest == ["refs"]:
            return _json({"branches": [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                                       for name, sha in repo.branches.items()],
                          "converts": [], "tags": [], "pullRequests": []})
        if method == "POST" and len(rest) == 2 and action in ("preupload", "commit", "branch"):
            if not authorized:
                raise _HubError(401, "Invalid username or password.")
            if "create_pr" in query:
                raise _HubError(400, "LocalHub does not imitate pull requests (create_pr)")
            if action == "preupload":
                return self._preupload(repo, rest[1], _loads(body))
            if action == "commit":
                return self._commit(repo_id, repo, rest[1], body)
            return self._create_branch(repo, rest[1], _loads(body))
        raise _HubError(404, f"LocalHub does not imitate {method} /api/models/{repo_id}/{'/'.join(rest)}")

    # ------------------------------------------------------------------ state helpers

    def _repo(self, repo_id: str, authorized: bool) -> _Repo:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "Repository not found", "RepoNotFound")
        if repo.private and not authorized:  # the Hub hides private repos from anonymous callers
            raise _HubError(401, "Repository not found", "RepoNotFound")
        return repo

    @staticmethod
    def _sha(repo: _Repo, revision: str) -> str:
        """The commit a branch name or a full commit sha designates."""
        sha = repo.branches.get(revision, revision)
        if sha not in repo.commits:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha

    @staticmethod
    def _new_commit(repo: _Repo, files: dict[str, bytes], summary: str, parent: str | None) -> str:
        sha = hashlib.sha1(uuid.uuid4().bytes).hexdigest()  # unique and 40-hex, like a git commit id
        repo.commits[sha] = _Commit(files, _now(), summary, parent)
        return sha

    # ------------------------------------------------------------------ endpoints

    def _create_repo(self, payload: dict[str, Any], authorized: bool) -> _Response:
        if not authorized:
            raise _HubError(401, "Invalid username or password.")
        if payload.get("type", "model") != "model":
            raise _HubError(400, "LocalHub imitates model repositories only")
        if not payload.get("organization"):
            raise _HubError(400, "LocalHub needs a namespaced repo id (org/name)")
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self._repos:  # create_repo(exist_ok=True) swallows this 409
            return _json({"error": "You already created this model repo", "url": url}, status=409)
        private = payload.get("visibility", "private" if payload.get("private") else "public") == "private"
        repo = _Repo(private=private, created_at=_now())
        repo.branches["main"] = self._new_commit(repo, {}, "initial commit", None)
        self._repos[repo_id] = repo
        return _json({"url": url, "name": repo_id, "id": repo_id})

    def _create_branch(self, repo: _Repo, branch: str, payload: dict[str, Any]) -> _Response:
        if branch in repo.branches:  # create_branch(exist_ok=True) swallows this 409
            return _json({"error": f"Reference already exists: refs/heads/{branch}"}, status=409)
        repo.branches[branch] = self._sha(repo, payload.get("startingPoint") or "main")
        return _json({})

    def _model_info(self, repo_id: str, repo: _Repo, revision: str, blobs: bool) -> _Response:
        sha = self._sha(repo, revision)
        commit = repo.commits[sha]
        siblings: list[dict[str, Any]] = []
        for path, data in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:  # ?blobs=True (files_metadata=True) adds sizes and blob ids
                sibling.update(size=len(data), blobId=_git_blob_sha1(data))
            siblings.append(sibling)
        return _json({"_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
                      "author": repo_id.split("/")[0], "sha": sha, "lastModified": commit.date,
                      "createdAt": repo.created_at, "private": repo.private, "disabled": False, "gated": False,
                      "downloads": 0, "likes": 0, "tags": [], "siblings": siblings})

    def _tree(self, repo: _Repo, revision: str, path: str, recursive: bool) -> _Response:
        sha = self._sha(repo, revision)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries: dict[str, dict[str, Any]] = {}
        for name, data in sorted(repo.commits[sha].files.items()):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):  # folders on the way
                folder = prefix + "/".join(parts[:depth])
                oid = hashlib.sha1(f"{sha}:{folder}".encode()).hexdigest()
                entries.setdefault(folder, {"type": "directory", "oid": oid, "size": 0, "path": folder})
            if recursive or len(parts) == 1:
                entries[name] = {"type": "file", "oid": _git_blob_sha1(data), "size": len(data), "path": name}
        if prefix and not entries:
            raise _HubError(404, f"Entry not found: {path}", "EntryNotFound")
        return _json(list(entries.values()))  # a single page: no "Link: next" header

    def _preupload(self, repo: _Repo, revision: str, payload: dict[str, Any]) -> _Response:
        current = repo.commits[self._sha(repo, revision)].files
        # "regular" for every file is what keeps the client off LFS and Xet: with hf_xet installed,
        # upload_folder only opens Xet uploads for files the server marks "lfs". The oid (git blob sha1
        # of the stored file) lets the client skip files that did not change, as on the Hub.
        return _json({"files": [{"path": item["path"], "uploadMode": "regular", "shouldIgnore": False,
                                 "oid": _git_blob_sha1(current[item["path"]]) if item["path"] in current else None}
                                for item in payload.get("files", [])]})

    def _commit(self, repo_id: str, repo: _Repo, branch: str, body: bytes) -> _Response:
        if branch not in repo.branches:
            raise _HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        head = repo.branches[branch]
        files = dict(repo.commits[head].files)
        summary = ""
        for line in body.splitlines():  # ndjson: a header, then one operation per line
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value.get("summary", "")
                if value.get("parentCommit") not in (None, head):
                    raise _HubError(412, f"Parent commit {value['parentCommit']} is not the head of {branch}")
            elif key == "file":
                content = value["content"]
                files[value["path"]] = base64.b64decode(content) if value.get("encoding") == "base64" \
                    else content.encode()
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise _HubError(404, f"File not found: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                folder = value["path"].strip("/") + "/"
                files = {path: data for path, data in files.items() if not path.startswith(folder)}
            else:  # "lfsFile" cannot happen: preupload never answers "lfs"
                raise _HubError(400, f"LocalHub does not imitate commit operations of kind {key!r}")
        sha = self._new_commit(repo, files, summary, head)
        repo.branches[branch] = sha
        return _json({"success": True, "commitOid": sha, "commitUrl": f"{self.url}/{repo_id}/commit/{sha}",
                      "hookOutput": ""})

    def _resolve(self, repo_id: str, revision: str, path: str, headers: Message, authorized: bool) -> _Response:
        repo = self._repo(repo_id, authorized)
        sha = self._sha(repo, revision)
        data = repo.commits[sha].files.get(path)
        if data is None:  # X-Repo-Commit lets the client cache the file's absence (.no_exist)
            raise _HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        # What file_download.get_hf_file_metadata reads from a HEAD: X-Repo-Commit, ETag and Content-Length
        # (no redirect, no X-Xet-Hash, so the GET comes back here as a plain HTTP download).
        out = {"X-Repo-Commit": sha, "ETag": f'"{_git_blob_sha1(data)}"', "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream"}
        start, end, status = 0, len(data), 200
        ranges = headers.get("Range", "")
        if ranges.startswith("bytes=") and "," not in ranges:  # resumed downloads send "bytes=N-"
            first, _, last = ranges[len("bytes="):].partition("-")
            start = int(first) if first else max(len(data) - int(last), 0)
            end = int(last) + 1 if first and last else len(data)
            if start >= len(data) > 0:
                raise _HubError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
            end, status = min(end, len(data)), 206
            out["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        return _Response(status, data[start:end], out)


def _loads(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError as error:
        raise _HubError(400, f"invalid JSON body: {error}") from error
    if not isinstance(payload, dict):
        raise _HubError(400, "expected a JSON object")
    return payload


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every answer carries Content-Length

    def _dispatch(self) -> None:
        hub: LocalHub = self.server.hub  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        with hub._lock:
            hub.requests.append((self.command, url.path))
        body = self._read_body()  # read even if unused, so the connection stays in sync
        try:
            response = hub._handle(self.command, url.path, parse_qs(url.query), self.headers, body)
        except _HubError as error:
            headers = {"Content-Type": "application/json", "X-Error-Message": error.message, **error.headers}
            if error.code is not None:
                headers["X-Error-Code"] = error.code
            response = _Response(error.status, json.dumps({"error": error.message}).encode(), headers)
        except Exception as error:  # a bug here should show up in the test, not hang the client
            response = _Response(500, json.dumps({"error": repr(error)}).encode(),
                                 {"Content-Type": "application/json"})
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))  # for HEAD: the size a GET would send
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
            while self.rfile.readline().strip():  # trailers, up to the empty line
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the per-request stderr log
        pass
