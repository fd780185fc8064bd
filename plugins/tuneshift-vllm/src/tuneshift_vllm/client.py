"""Send /v1/completions requests to one or more vLLM-compatible servers, concurrently and with retries.

Several URLs are data parallelism: request i goes to server i mod len(urls),
so equal-sized requests spread evenly. Connection errors, timeouts, 429 and
5xx are retried with exponential backoff; any other status is the caller's
mistake (an unknown model name, a bad field) and fails at once with the
server's own message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import httpx
from pydantic import Field
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from tuneshift.api import Options, RunError, UsageError

RETRYABLE = {408, 429, 500, 502, 503, 504}


class ServerOptions(Options):
    urls: list[str] = Field(["http://127.0.0.1:8000/v1"], min_length=1,
                            description="base URLs ending in /v1; several servers share the work")
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    concurrency: int = Field(4, ge=1, description="requests in flight per server")
    retries: int = Field(3, ge=0)
    timeout: float = Field(120.0, gt=0, description="seconds per request")

    TRANSPORT: ClassVar[tuple[str, ...]] = ("urls", "api_key_env", "concurrency", "retries", "timeout")
    """Fields that change how requests travel, not what they return: left out of cache keys."""


def identity(name: str, options: ServerOptions, also_exclude: set[str] = frozenset()) -> dict[str, Any]:
    """A cache identity without the transport fields: moving between servers recomputes nothing."""
    return {"name": name, **options.model_dump(mode="json", exclude=set(ServerOptions.TRANSPORT) | also_exclude)}


class Retryable(Exception):
    pass


def _headers(options: ServerOptions, kind: str) -> dict[str, str]:
    env = options.api_key_env
    if env is None:
        return {}
    key = os.environ.get(env)
    if not key:
        raise UsageError(f"{kind}.api_key_env: the environment variable {env} is not set")
    return {"Authorization": f"Bearer {key}"}


class ServerPool:
    def __init__(self, options: ServerOptions, owner: str, kind: str) -> None:
        self.options, self.owner = options, owner
        self.headers = _headers(options, kind)
        self.clients = [httpx.Client(base_url=url.rstrip("/"), timeout=options.timeout, headers=self.headers)
                        for url in options.urls]

    def completions(self, bodies: list[dict[str, Any]], done: Callable[[int], None] = lambda i: None) -> list[dict]:
        """POST every body to /completions; results in order. `done(i)` is called as request i finishes."""
        workers = self.options.concurrency * len(self.clients)

        def one(i: int) -> dict:
            result = self._post(self.clients[i % len(self.clients)], bodies[i])
            done(i)
            return result

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, range(len(bodies))))

    def _post(self, client: httpx.Client, body: dict[str, Any]) -> dict:
        @retry(stop=stop_after_attempt(self.options.retries + 1), reraise=True,
               wait=wait_exponential(multiplier=0.5, max=10), retry=retry_if_exception(_transient))
        def attempt() -> dict:
            response = client.post("/completions", json=body)
            if response.status_code in RETRYABLE:
                raise Retryable(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise RunError(f"{self.owner}: {client.base_url} refused the request: HTTP {response.status_code} "
                               f"{_message(response)}")
            try:
                return response.json()
            except ValueError:
                raise Retryable("the response is not JSON") from None

        try:
            return attempt()
        except (Retryable, httpx.TransportError) as exc:
            detail = str(exc) or type(exc).__name__
            raise RunError(f"{self.owner}: {client.base_url} failed after {self.options.retries + 1} tries: "
                           f"{detail}") from None

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, (Retryable, httpx.TransportError))


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return response.text[:300]
