"""The model-driven operator `ask`: a model reads kept answers and writes the questions nobody asked yet.

The rule-based operators know only question templates and capitalised names;
a model reading "Mara Quell leads Orion; the team moved to Tarn in 2019"
asks what a reader would ask next, in any domain, and for a task it writes
new inputs of the same task (LLM knowledge-base crawling: LMCRAWL arXiv
2301.12810, GPTKB arXiv 2411.04920). Its proposals compete in the agent's
bandit like every operator's, so a run learns whether it pays in its domain.
The asking model is the teacher's base, the teacher, a local model, or any
litellm model (`api_base`: `tuneshift serve`, vLLM, a hosted API).
"""

from __future__ import annotations

import os
import random
from typing import Any, Callable, Iterator

from tuneshift.api import ModelSpec, RunError, Sampling, UsageError, local_model, parse_prompts

from .operators import Idea, Knowledge

REQUEST = ("Here are questions someone asked and the answers they got:\n\n{pairs}\n\n"
           "Write {k} new questions about the people, places, things and facts these answers mention that none "
           "of the questions above asks yet (or, if these are inputs of a task, {k} new inputs of the same task). "
           "Reply with a JSON list of strings only.")


def requests_for(k: Knowledge, rng: random.Random, n: int, shown: int, per_request: int) -> list[tuple[str, str]]:
    """(request, the kept prompt it starts with) for `n` proposals: each shows `shown` kept pairs drawn from
    the best, so the requests differ and the model sees what the run already knows."""
    pool = [c for c in k.kept if c.response][: 8 * shown]
    if not pool:
        return []
    out = []
    for _ in range(-(-n // per_request)):
        pairs = rng.sample(pool, min(shown, len(pool)))
        text = "\n\n".join(f"Q: {c.prompt}\nA: {c.response}" for c in pairs)
        out.append((REQUEST.format(pairs=text, k=per_request), pairs[0].prompt))
    return out


def ask(k: Knowledge, rng: random.Random, send: Callable[[list[str]], list[str]], n: int, shown: int,
        per_request: int) -> Iterator[Idea]:
    """The operator's ideas; the model is asked when the agent first draws from it (once per round)."""
    requests = requests_for(k, rng, n, shown, per_request)
    for (_, parent), reply in zip(requests, send([r for r, _ in requests]) if requests else []):
        for prompt in parse_prompts(reply):
            yield prompt, parent, {"asked": "model"}


class Asker:
    """Sends the operator's requests to its model: in process through the run's answerer (cached like
    every generation), or to a litellm model (cached through the run's cache)."""

    def __init__(self, expander: Any) -> None:
        self.expander, self.o = expander, expander.options

    def check(self) -> None:
        o = self.o
        if o.api_base is None and o.model not in ("teacher", "base"):
            self.spec()  # a hub id resolves, a missing path is refused
        if o.api_key_env and not os.environ.get(o.api_key_env):
            raise UsageError(f"expander.api_key_env: the environment variable {o.api_key_env} is not set")

    def spec(self) -> ModelSpec:
        teacher = self.expander.context.teacher
        if self.o.model == "teacher":
            return teacher
        if self.o.model == "base":
            return teacher.base_only()
        from pathlib import Path

        path = local_model(self.o.model, "config: expander.model =")
        if not Path(path).exists():
            raise UsageError(f"config: expander.model = {self.o.model}: no such file or directory (give teacher, "
                             "base, a model directory, a hub id, or a litellm model with expander.api_base)")
        return ModelSpec(base=path)

    def __call__(self, requests: list[str], seed: int) -> list[str]:
        o, context = self.o, self.expander.context
        if o.api_base is None:
            sampling = Sampling(max_new_tokens=o.ask_max_new_tokens, temperature=o.ask_temperature, seed=seed)
            return [a.text or "" for a in context.generate(self.spec(), requests, sampling)]
        namespace = ["agentic-ask", o.model, o.api_base, o.ask_temperature, o.ask_max_new_tokens, seed]
        return context.cached(namespace, requests, lambda batch: [self._litellm(r, seed) for r in batch])

    def _litellm(self, request: str, seed: int) -> str:
        import litellm

        o = self.o
        key = os.environ.get(o.api_key_env) if o.api_key_env else None
        try:
            reply = litellm.completion(model=o.model, api_base=o.api_base, api_key=key, seed=seed, timeout=o.timeout,
                                       messages=[{"role": "user", "content": request}], num_retries=o.retries,
                                       temperature=o.ask_temperature, max_tokens=o.ask_max_new_tokens)
        except Exception as exc:  # litellm wraps every provider failure: one line
            detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise RunError(f"expander agentic: operator ask: {o.model} at {o.api_base} failed: {detail}") from None
        return reply.choices[0].message.content or ""
