"""The OpenAI-compatible app (imported only by `tuneshift serve`): the request's `model` picks the base or a named adapter, as in vLLM.

Requests are answered by the built-in hf answerer one batch at a time (a lock
serialises access to the model); the API key, when set, is checked on every
request, and bodies over the size limit are refused before they are read.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tuneshift.errors import UsageError
from tuneshift.kinds import Context, ModelSpec, Sampling


@dataclass
class ServeConfig:
    base: str
    base_name: str
    adapters: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None
    max_request_bytes: int = 1 << 20

    @classmethod
    def build(cls, base: str, adapters: tuple[str, ...], name: str | None, api_key: str | None,
              max_request_bytes: int) -> "ServeConfig":
        if not Path(base).exists():
            raise UsageError(f"--model {base}: no such file or directory")
        parsed: dict[str, str] = {}
        for item in adapters:
            key, sep, path = item.partition("=")
            if not sep or not key or not Path(path).is_dir():
                raise UsageError(f"--adapter {item!r}: expected NAME=DIR with an existing directory")
            parsed[key] = path
        return cls(base, name or Path(base).name, parsed, api_key, max_request_bytes)

    def spec(self, model: str) -> ModelSpec | None:
        if model == self.base_name:
            return ModelSpec(base=self.base)
        if model in self.adapters:
            return ModelSpec(base=self.base, adapter=self.adapters[model])
        return None


def _error(status: int, message: str, kind: str = "invalid_request_error"):
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def chat_prompt(messages: list[dict[str, Any]]) -> str:
    """One user turn for the answerer: a lone user message as is, else the turns as labelled lines."""
    if len(messages) == 1 and messages[0].get("role") == "user":
        return str(messages[0].get("content", ""))
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)


def create_app(config: ServeConfig):
    from tuneshift_hf.answering import HFAnswerer

    app = FastAPI(title="tuneshift serve")
    context = Context(teacher=ModelSpec(base=config.base), target=None, seed=0, work_dir=".")
    answerer = HFAnswerer(HFAnswerer.Options(), context)
    lock = threading.Lock()
    app.state.requests = 0

    @app.middleware("http")
    async def guard(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and int(length) > config.max_request_bytes:
            return _error(413, f"request body over {config.max_request_bytes} bytes")
        if config.api_key is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), config.api_key.encode()):
                return _error(401, "invalid or missing API key", "authentication_error")
        return await call_next(request)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        names = [config.base_name, *config.adapters]
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "tuneshift"} for n in names]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        spec = config.spec(str(body.get("model", "")))
        if spec is None:
            return _error(404, f"model {body.get('model')!r} is not served here")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages must be a non-empty list")
        sampling = Sampling(max_new_tokens=int(body.get("max_tokens") or 128),
                            temperature=float(body.get("temperature") or 0.0), top_p=float(body.get("top_p") or 1.0),
                            seed=int(body.get("seed") or 0))
        n = int(body.get("n") or 1)
        prompt = chat_prompt(messages)

        def work():
            with lock:
                return answerer.answer(spec, [prompt] * n, sampling)

        answers = await asyncio.to_thread(work)
        app.state.requests += 1
        choices = [{"index": i, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": a.text or ""}} for i, a in enumerate(answers)]
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "requests": app.state.requests}

    return app


def run(config: ServeConfig, host: str, port: int) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        import warnings

        warnings.warn(f"serving on {host}: reachable from other machines"
                      + ("" if config.api_key else " without an API key"), stacklevel=1)
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
