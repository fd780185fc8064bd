"""A Hugging Face hub on loopback, for tests of what tuneshift sends it (a real HTTP server, stdlib only).

It speaks the few endpoints huggingface_hub (2.x) calls for `create_repo`, `create_branch` and
`upload_folder` of small files: /api/repos/create, /api/validate-yaml, /api/models/ID/preupload/REV
(every file "regular", so its bytes come inlined, base64, in the commit: no LFS or Xet upload),
/api/models/ID/commit/REV (the ndjson commit), and the anonymous /api/agent-harnesses that
huggingface_hub fetches (at most daily, cached in HF_HOME) for its user agent. Every request is
recorded, parsed; anything else is a 404 the test sees in `requests`. A request without one of
`tokens` gets the hub's 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPO_OP = re.compile(r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)/(?P<op>preupload|commit|branch)/(?P<rev>[^/]+)$")


@dataclass
class Hub:
    """What the fake hub was asked and what it holds: `repos[id]` = {"visibility", "branches": {name: files}}."""

    url: str
    tokens: set[str]
    requests: list[dict[str, Any]] = field(default_factory=list)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def files(self, repo: str, branch: str = "main") -> dict[str, bytes]:
        return self.repos[repo]["branches"][branch]

    def commits(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "/commit/" in r["path"]]


def parse(content_type: str, raw: bytes) -> Any:
    if "ndjson" in content_type:
        return [json.loads(line) for line in raw.splitlines() if line.strip()]
    if "json" in content_type and raw:
        return json.loads(raw)
    return raw


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's client expects
    hub: Hub

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        headers = {key.lower(): value for key, value in self.headers.items()}
        record = {"method": self.command, "path": path, "query": query, "headers": headers,
                  "body": parse(headers.get("content-type", ""), raw)}
        with self.hub.lock:
            self.hub.requests.append(record)
            status, body = self.route(record)
        self.reply(status, body, {"X-Error-Message": body["error"]} if "error" in body else None)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def route(self, record: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        hub, method, path, body = self.hub, record["method"], record["path"], record["body"]
        if (method, path) == ("GET", "/api/agent-harnesses"):  # huggingface_hub's user-agent telemetry, anonymous
            return 200, {"standardEnvVars": [], "harnesses": {}}
        auth = record["headers"].get("authorization", "")
        if auth.removeprefix("Bearer ") not in hub.tokens:
            return 401, {"error": "Invalid credentials in Authorization header"}
        if (method, path) == ("POST", "/api/validate-yaml"):
            return 200, {"errors": [], "warnings": []}
        if (method, path) == ("POST", "/api/repos/create"):
            repo = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
            if repo in hub.repos:
                return 409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo}"}
            hub.repos[repo] = {"visibility": body.get("visibility", "public"), "type": body.get("type"),
                               "branches": {"main": {".gitattributes": b"*.safetensors filter=lfs\n"}}}
            return 200, {"url": f"{hub.url}/{repo}", "name": repo}
        match = REPO_OP.match(path)
        if method != "POST" or match is None or match["repo"] not in hub.repos:
            return 404, {"error": "Repository not found"}
        branches, rev = hub.repos[match["repo"]]["branches"], match["rev"]
        if match["op"] == "branch":
            if rev in branches:
                return 409, {"error": "Reference already exists"}
            branches[rev] = dict(branches["main"])
            return 200, {}
        if rev not in branches:
            return 404, {"error": f"Invalid rev id: {rev}"}
        if match["op"] == "preupload":
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                                   for f in body["files"]]}
        files = dict(branches[rev])  # the commit: a header line, then one line per file
        for line in body[1:]:
            if line["key"] != "file" or line["value"].get("encoding") != "base64":
                return 400, {"error": f"unsupported commit operation {line['key']}"}
            files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
        branches[rev] = files
        oid = hashlib.sha1(json.dumps(sorted(files)).encode() + str(len(hub.requests)).encode()).hexdigest()
        return 200, {"commitUrl": f"{hub.url}/{match['repo']}/commit/{oid}", "commitOid": oid}


@contextmanager
def fake_hub(tokens: set[str]) -> Iterator[Hub]:
    """A hub on a free loopback port until the block ends, accepting the bearer `tokens`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hub = Hub(url=f"http://127.0.0.1:{server.server_address[1]}", tokens=tokens)
    server.RequestHandlerClass = type("BoundHandler", (Handler,), {"hub": hub})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
