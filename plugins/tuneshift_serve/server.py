"""The OpenAI-compatible app (imported only by `tuneshift serve`): the request's `model` picks the base or a named adapter, as in vLLM.

One copy of the base weights serves every adapter; concurrent requests are
merged into shared batches (batcher.py). Every request passes the guard
first: the API key, when set, is compared in constant time (the scheme
`Bearer` in any case), and a body over the size limit is refused with 413
whether or not it declares its length (chunked uploads are counted as they
arrive, never buffered past the limit). Every error is a JSON body in the
OpenAI shape `{"error": {"message", "type", "code"}}`, an unexpected
exception included (500, `server_error`, one log line).
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tuneshift.api import UsageError

from .completions import (
    ChatRequest,
    CompletionRequest,
    adapter_for,
    chat_response,
    chat_rows,
    completion_response,
    completion_rows,
)
from .engine import adapter_paths

LOOPBACK = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("uvicorn.error")


@dataclass
class ServeConfig:
    base: str
    base_name: str
    adapters: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None
    max_request_bytes: int = 1 << 20
    batch_wait_ms: float = 10.0

    @classmethod
    def build(cls, base: str, adapters: tuple[str, ...], name: str | None, api_key: str | None,
              max_request_bytes: int, batch_wait_ms: float = 10.0) -> "ServeConfig":
        from tuneshift.api import ModelSpec, local_model

        name = name or base.rstrip("/").split("/")[-1]  # a hub id serves as its name, not its snapshot's hash
        base = local_model(base, "--model")
        if not Path(base).exists():
            raise UsageError(f"--model {base}: no such file or directory")
        from tuneshift_hf.shared import check_spec

        paths = adapter_paths(adapters)
        check_spec(ModelSpec(base=base))  # file headers only: a bad model or adapter is refused before loading
        for path in paths.values():
            check_spec(ModelSpec(base=base, adapter=path))
        return cls(base, name, paths, api_key, max_request_bytes, batch_wait_ms)


def error_body(status: int, message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": status}}


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(error_body(status, message, kind), status_code=status)


def bearer_key(authorization: str) -> str:
    """The key of an `Authorization: Bearer KEY` header (the scheme in any case); "" for any other header."""
    scheme, _, key = authorization.strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def server_error(exc: BaseException) -> dict[str, Any]:
    lines = str(exc).strip().splitlines()
    return error_body(500, f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__, "server_error")


class Guard:
    """ASGI middleware: API key and request size, checked before the app reads anything."""

    def __init__(self, app: Any, api_key: str | None, max_bytes: int) -> None:
        self.app, self.api_key, self.max_bytes = app, api_key, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.api_key is not None:
            given = bearer_key(headers.get("authorization", ""))
            if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                return await _send(send, 401, error_body(401, "invalid or missing API key", "authentication_error"))
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _send(send, 413, error_body(413, f"request body over {self.max_bytes} bytes"))
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _send(send, 413, error_body(413, f"request body over {self.max_bytes} bytes"))
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, replay, tracked)
        except Exception as exc:  # the app's handler answered already (JSON 500); log one line, not a traceback
            log.error("%s %s: %s", scope.get("method"), scope.get("path"), server_error(exc)["error"]["message"])
            log.debug("traceback", exc_info=True)
            if not started:
                await _send(send, 500, server_error(exc))


async def _send(send: Any, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def create_app(config: ServeConfig) -> Any:
    from .batcher import MicroBatcher
    from .engine import Engine

    engine = Engine(config.base, config.adapters)
    batcher = MicroBatcher(engine, wait_s=config.batch_wait_ms / 1000)
    app = FastAPI(title="tuneshift serve")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"{where}: {first.get('msg')}" if where else str(first.get("msg")))

    @app.exception_handler(UsageError)
    async def refused(request: Request, exc: UsageError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:  # 404, 405: JSON too
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(exc.status_code, str(exc.detail), kind), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(server_error(exc), status_code=500)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        names = [config.base_name, *config.adapters]
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "tuneshift"} for n in names]}

    def served(request: CompletionRequest | ChatRequest) -> str | JSONResponse:
        """The adapter (or BASE) the request's model names, or why it cannot be served here."""
        adapter = adapter_for(engine, config.base_name, request.model)
        if adapter is None:
            return _error(404, f"model {request.model!r} is not served here")
        if request.stream:
            return _error(400, "stream is not supported")
        return adapter

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest) -> Any:
        adapter = served(request)
        if isinstance(adapter, JSONResponse):
            return adapter
        try:
            rows = completion_rows(engine, request, adapter)
        except ValueError as exc:
            return _error(400, str(exc))
        return completion_response(engine, request, rows, await batcher.run(rows))

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest) -> Any:
        adapter = served(request)
        if isinstance(adapter, JSONResponse):
            return adapter
        rows = chat_rows(engine, request, adapter)
        return chat_response(engine, request, rows, await batcher.run(rows))

    @app.get("/health")
    def health() -> dict[str, Any]:
        stats = batcher.stats
        return {"status": "ok", "requests": stats.requests, "batches": stats.batches, "rows": stats.rows}

    return Guard(app, config.api_key, config.max_request_bytes)


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port as uvicorn binds it, or one line saying why not (taken, not an address here)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart reuses the port
        sock.bind((host, port))
    except (OSError, UnicodeError) as exc:
        sock.close()
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use") from None
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({reason})") from None
    return sock


def run(config: ServeConfig, host: str, port: int) -> None:
    import uvicorn

    sock = bind(host, port)  # before the model loads: a busy port is found at once
    if host not in LOOPBACK:
        import warnings

        warnings.warn(f"serving on {host}: reachable from other machines"
                      + ("" if config.api_key else " without an API key"), stacklevel=1)
    try:
        uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
