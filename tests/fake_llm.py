"""A real OpenAI-compatible HTTP server on loopback that misbehaves on demand, for generator-fault tests.

Modes: "ok" (a JSON list of prompts, the same for the same request), "garbage" (200 with a body that is
not JSON), "sleep" (answers after `delay` seconds). `die_after=N` serves N requests, then the server
stops listening, as a crashed server would: further connections are refused.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reply_for(content: str) -> list[str]:
    """Two new prompts, a pure function of the request text (so reruns and references agree)."""
    h = hashlib.sha256(content.encode()).hexdigest()
    return [f"What is known about the Zorbian place {h[:6]}?", f"Who lives in the Zorbian town {h[6:12]}?"]


class FakeLLM:
    def __init__(self, mode: str = "ok", port: int = 0, delay: float = 0.0, die_after: int | None = None) -> None:
        self.mode, self.delay, self.die_after = mode, delay, die_after
        self.requests = 0
        self.auth: list[str | None] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with fake._lock:
                    fake.requests += 1
                    fake.auth.append(self.headers.get("authorization"))
                    dying = fake.die_after is not None and fake.requests >= fake.die_after
                if fake.mode == "sleep":
                    time.sleep(fake.delay)
                if fake.mode == "garbage":
                    data = b"<html>502 Bad Gateway</html> {not json"
                else:
                    content = json.dumps(reply_for(json.dumps(body.get("messages"), sort_keys=True)))
                    data = json.dumps({"id": "fake", "object": "chat.completion", "created": 0,
                                       "model": body.get("model", "?"),
                                       "choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant", "content": content}}],
                                       "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                                 "total_tokens": 2}}).encode()
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout): nothing to answer
                    pass
                if dying:  # stop listening: later connections are refused
                    threading.Thread(target=fake.stop, daemon=True).start()

        return Handler
