"""A small Hub-compatible HTTP server for offline tests (standard library only).

It answers the endpoints that ``huggingface_hub`` uses to create a repo, commit files and download them (listed
in ../shared/ECOSYSTEM.md "Hub without a network"), keeping every repo in memory:

- ``POST /api/repos/create``: create ``organization/name`` (an existing repo answers 409 like the Hub);
- ``POST /api/{type}s/{id}/preupload/{rev}``: every file is uploaded "regular" (base64 in the commit, no LFS/Xet);
- ``POST /api/{type}s/{id}/commit/{rev}``: NDJSON header + files (base64) + deleted files;
- ``POST /api/validate-yaml``: accepts any card metadata;
- ``HEAD|GET /{id}/resolve/{rev}/{path}``: the file, with ``ETag`` and ``X-Repo-Commit``;
- ``GET /api/{type}s/{id}[/revision/{rev}]`` and ``GET /api/{type}s/{id}/tree/{rev}[/{path}]``: repo info and
  listings (transformers asks for them while loading a tokenizer).

Request headers (the ``Authorization`` token among them) are never stored or printed; ``authorizations`` only
counts the requests that carried one. Use ``local_hub()``: it serves on a free port in a daemon thread and points
``huggingface_hub`` (which read ``HF_ENDPOINT`` when it was imported) and transformers' shared ``HfApi`` at it for
the duration of the block.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["HubState", "local_hub"]

_API = re.compile(r"^/api/(?P<type>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)(?P<rest>/.*)?$")
_RESOLVE = re.compile(r"^/(?:(?P<type>datasets|spaces)/)?(?P<id>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


@dataclass
class HubState:
    """What the server holds: ``repos[repo_id][path] = bytes`` (branch ``main``), one commit id per commit."""

    url: str = ""
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    commits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    authorizations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def head(self, repo_id: str) -> str:
        """The current commit id of ``repo_id`` (40 hex digits, like git)."""
        history = self.commits.get(repo_id) or [{"oid": "0" * 40}]
        return history[-1]["oid"]


def _handler(state: HubState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
            return

        # ----- helpers ---------------------------------------------------------------------------------------
        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                   content_type: str = "application/json", send_body: bool = True) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if send_body and body and self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._reply(status, json.dumps(obj).encode("utf-8"), headers)

        def _error(self, status: int, code: str, message: str) -> None:
            self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _note(self) -> None:
            with state.lock:
                state.requests.append(f"{self.command} {urlsplit(self.path).path}")
                if self.headers.get("Authorization"):
                    state.authorizations += 1

        # ----- verbs -----------------------------------------------------------------------------------------
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            self._note()
            path = unquote(urlsplit(self.path).path)
            body = self._body()
            if path == "/api/validate-yaml":
                return self._json(200, {})
            if path == "/api/repos/create":
                payload = json.loads(body or b"{}")
                repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") \
                    else f"user/{payload['name']}"
                with state.lock:
                    if repo_id in state.repos:
                        return self._json(409, {"error": "You already created this model repo",
                                                "url": f"{state.url}/{repo_id}"})
                    state.repos[repo_id] = {}
                return self._json(200, {"url": f"{state.url}/{repo_id}", "name": repo_id, "id": repo_id})
            match = _API.match(path)
            if not match or match["id"] not in state.repos:
                return self._error(404, "RepoNotFound", f"Repository not found: {path}")
            repo_id, rest = match["id"], match["rest"] or ""
            if rest.startswith("/preupload/"):
                files = json.loads(body)["files"]
                return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files], "commitOid": state.head(repo_id)})
            if rest.startswith("/commit/"):
                return self._commit(repo_id, body)
            return self._error(404, "EntryNotFound", f"no such endpoint: {path}")

        def _commit(self, repo_id: str, body: bytes) -> None:
            summary = ""
            added: dict[str, bytes] = {}
            deleted: list[str] = []
            for line in body.decode("utf-8").splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                value = item["value"]
                if item["key"] == "header":
                    summary = value.get("summary", "")
                elif item["key"] == "file":
                    added[value["path"]] = base64.b64decode(value["content"])
                elif item["key"] in ("deletedFile", "deletedFolder"):
                    deleted.append(value["path"])
                else:
                    return self._error(400, "BadRequest", f"unsupported commit item {item['key']!r}")
            with state.lock:
                files = state.repos[repo_id]
                for p in deleted:
                    files.pop(p, None)
                files.update(added)
                oid = hashlib.sha1(f"{repo_id}{len(state.commits.get(repo_id, []))}{summary}".encode()).hexdigest()
                state.commits.setdefault(repo_id, []).append({"oid": oid, "summary": summary, "files": sorted(added)})
            self._json(200, {"commitUrl": f"{state.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                             "pullRequestUrl": None})

        def do_HEAD(self) -> None:  # noqa: N802
            self._get(send_body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._get(send_body=True)

        def _get(self, send_body: bool) -> None:
            self._note()
            path = unquote(urlsplit(self.path).path)
            match = _RESOLVE.match(path)
            if match:
                files = state.repos.get(match["id"])
                if files is None:
                    return self._error(404, "RepoNotFound", f"Repository not found: {match['id']}")
                data = files.get(match["path"])
                if data is None:
                    return self._error(404, "EntryNotFound", f"{match['path']} does not exist on main")
                etag = f'"{hashlib.sha1(data).hexdigest()}"'
                return self._reply(200, data, {"ETag": etag, "X-Repo-Commit": state.head(match["id"])},
                                   content_type="application/octet-stream", send_body=send_body)
            match = _API.match(path)
            if match and match["id"] in state.repos:
                repo_id, rest = match["id"], match["rest"] or ""
                files = state.repos[repo_id]
                if rest == "" or rest.startswith("/revision/"):
                    return self._json(200, {"id": repo_id, "modelId": repo_id, "sha": state.head(repo_id),
                                            "private": False, "siblings": [{"rfilename": p} for p in sorted(files)],
                                            "tags": [], "downloads": 0, "likes": 0})
                if rest.startswith("/tree/"):
                    parts = rest.split("/", 3)
                    prefix = parts[3].strip("/") + "/" if len(parts) > 3 and parts[3].strip("/") else ""
                    listed = [p for p in sorted(files) if p.startswith(prefix)]
                    if prefix and not listed:
                        return self._error(404, "EntryNotFound", f"{prefix} does not exist on main")
                    return self._json(200, [{"type": "file", "path": p, "size": len(files[p]),
                                             "oid": hashlib.sha1(files[p]).hexdigest()} for p in listed])
            return self._error(404, "RepoNotFound" if not match else "EntryNotFound", f"not found: {path}")

    return Handler


@contextlib.contextmanager
def local_hub(monkeypatch: Any) -> Iterator[HubState]:
    """Serve a ``HubState`` on a free local port and point ``huggingface_hub`` at it until the block ends.

    ``huggingface_hub.constants`` read ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` when they were imported, so setting
    the environment variable now is not enough: the constants (and the URL template built from the endpoint) are
    patched with ``monkeypatch``, ``HF_ENDPOINT`` is set for any subprocess, and transformers' shared ``HfApi``
    (which captured the endpoint when it was created) is reset.
    """
    import huggingface_hub.constants as constants
    import transformers.utils.hub as transformers_hub

    state = HubState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="local-hub", daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", state.url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(constants, "ENDPOINT", state.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            state.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(transformers_hub, "_hf_api", None)
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
