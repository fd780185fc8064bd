"""`litellm-paraphrase`: few-shot prompt writing through any litellm model.

`openai/NAME`, `hosted_vllm/NAME`, `ollama/NAME`, ... with `api_base` for a
self-hosted server. Requests run concurrently (asyncio, a semaphore), retry
with exponential backoff (`retries`, `backoff`; a refused key or a bad request
is not retried), and are cached by fingerprint (model, endpoint, parameters,
request text; never the key), so a rerun sends nothing. The API key comes
from the environment variable named by `api_key_env` (or litellm's own
variables) and is never written anywhere.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any, Literal

from pydantic import Field

from tuneshift.api import (
    Expander,
    ExpansionState,
    Options,
    Proposal,
    RunError,
    UsageError,
    build_request,
    parse_prompts,
)


class LitellmOptions(Options):
    model: str = Field(..., description="litellm model, e.g. openai/gpt-4o-mini or hosted_vllm/NAME")
    api_base: str | None = None
    api_key_env: str | None = Field(None, description="name of the environment variable holding the key")
    api: Literal["chat", "text"] = "chat"
    temperature: float = Field(0.9, ge=0)
    max_tokens: int = Field(512, ge=1)
    prompts_per_request: int = Field(8, ge=1)
    positives: int = Field(6, ge=1)
    negatives: int = Field(3, ge=0)
    concurrency: int = Field(4, ge=1)
    retries: int = Field(3, ge=0, description="retries of a failed request (not of a refused key)")
    backoff: float = Field(1.0, ge=0, description="seconds before the first retry, doubling after each")
    timeout: float = Field(60.0, gt=0, description="seconds per request")


class LitellmParaphrase(Expander):
    name = "litellm-paraphrase"
    description = "any litellm model writes prompts like the best kept ones (JSON list, cached, concurrent)"
    Options = LitellmOptions

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, **self.options.model_dump(mode="json", exclude={"concurrency", "timeout", "backoff"})}

    def check(self) -> None:
        self._api_key()  # a missing key variable is bad input: refuse before the run starts

    def _api_key(self) -> str | None:
        env = self.options.api_key_env
        if env is None:
            return None
        if not os.environ.get(env):
            raise UsageError(f"expander.api_key_env: the environment variable {env} is not set")
        return os.environ[env]

    def propose(self, state: ExpansionState, n: int) -> list[Proposal]:
        rng = random.Random(f"{self.context.seed}/{state.round}/{self.name}")
        per = self.options.prompts_per_request
        requests = [build_request(state, per, self.options.positives, self.options.negatives, rng)
                    for _ in range(-(-n // per))]
        replies = self.context.cached(["litellm", self.identity()], [r for r, _ in requests], self._send_all,
                                      batch_size=self.options.concurrency)
        out: list[Proposal] = []
        for (_, parent), reply in zip(requests, replies):
            out += [Proposal(prompt=p, origin=self.name, parent=parent, operator="fewshot") for p in parse_prompts(reply)]
        return out[:n]

    def _send_all(self, texts: list[str]) -> list[str]:
        return asyncio.run(self._gather(texts))

    async def _gather(self, texts: list[str]) -> list[str]:
        gate = asyncio.Semaphore(self.options.concurrency)
        key = self._api_key()

        async def one(text: str) -> str:
            async with gate:
                return await self._call(text, key)

        return list(await asyncio.gather(*(one(t) for t in texts)))

    async def _call(self, text: str, key: str | None) -> str:
        """One request, retried here (litellm's and the SDK's own retries off, so the count is exact)."""
        import litellm

        o = self.options
        common = {"model": o.model, "api_base": o.api_base, "api_key": key, "temperature": o.temperature,
                  "max_tokens": o.max_tokens, "timeout": o.timeout, "num_retries": 0, "max_retries": 0}
        for attempt in range(o.retries + 1):
            try:
                if o.api == "chat":
                    reply = await litellm.acompletion(messages=[{"role": "user", "content": text}], **common)
                    return reply.choices[0].message.content or ""
                reply = await litellm.atext_completion(prompt=text, **common)
                return reply.choices[0].text or ""
            except Exception as exc:  # litellm wraps every provider failure; report it in one line
                if attempt < o.retries and _transient(exc):
                    await asyncio.sleep(o.backoff * 2 ** attempt)
                    continue
                detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                raise RunError(f"expander {self.name}: {o.model} failed after {attempt} retries: {detail}") from None
        raise AssertionError("unreachable")


def _transient(exc: Exception) -> bool:
    """Whether retrying may help: not for a refused key, a bad request or an unknown model."""
    import litellm

    permanent = (litellm.AuthenticationError, litellm.PermissionDeniedError, litellm.BadRequestError,
                 litellm.NotFoundError, litellm.UnprocessableEntityError)
    return not isinstance(exc, permanent)
