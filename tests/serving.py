"""Start `tuneshift serve` on a free loopback port for a test module (a real HTTP server, real tiny models)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(*args: str, key: str | None = None, host: str = "127.0.0.1") -> Iterator[dict]:
    """`tuneshift serve ARGS --port P` running until the block ends; yields its url, port and process."""
    port = free_port()
    command = [sys.executable, "-c", "import sys; from tuneshift._cli import main; sys.exit(main())", "serve",
               *args, "--port", str(port), *(["--api-key", key] if key else [])]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://{host}:{port}"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.time() + 90
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"tuneshift serve exited: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", headers=headers).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("tuneshift serve did not start within 90 s")
        yield {"url": url, "port": port, "proc": proc, "headers": headers}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
