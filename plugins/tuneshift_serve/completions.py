"""Requests and responses of the OpenAI-compatible endpoints, in vLLM's shapes.

A `/v1/completions` prompt may be text, a list of texts, token ids or a list
of token-id lists. `echo` with `logprobs` returns every prompt position with a
null first entry (nothing predicts the first token); vLLM's `prompt_logprobs`
returns, per prompt position, a map from token id to logprob, rank and decoded
token holding the actual token and the top-k. Unknown fields are ignored, as
OpenAI clients send many.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tuneshift.api import Sampling

from .engine import BASE, Completion, Engine, Position, Row

MAX_TOP = 20
MAX_SEED = 2**63 - 1
"""Seeds are 64-bit (torch's generators); seed + i for the i-th of n choices stays in range."""


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int = Field(16, ge=0)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=16)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP)
    prompt_logprobs: int | None = Field(None, ge=0, le=MAX_TOP)
    stop: str | list[str] | None = None
    stream: bool = False
    skip_special_tokens: bool = True


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=16)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    stop: str | list[str] | None = None
    stream: bool = False


def prompt_ids(engine: Engine, prompt: Any) -> list[list[int]]:
    """Every prompt of a request as token ids (text is tokenised as vLLM does, special tokens added)."""
    if isinstance(prompt, str):
        prompts: list[Any] = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        prompts = [prompt]
    else:
        prompts = list(prompt)
    if not prompts:
        raise ValueError("prompt is empty")
    return [engine.tokenizer(p)["input_ids"] if isinstance(p, str) else list(p) for p in prompts]


def completion_rows(engine: Engine, request: CompletionRequest, adapter: str) -> list[Row]:
    top = max(request.logprobs or 0, request.prompt_logprobs or 0)
    want_prompt = (request.echo and request.logprobs is not None) or request.prompt_logprobs is not None
    rows = []
    for ids in prompt_ids(engine, request.prompt):
        for j in range(request.n):
            sampling = Sampling(max_new_tokens=request.max_tokens, temperature=request.temperature,
                                top_p=request.top_p, seed=(request.seed or 0) + j)
            rows.append(Row(tuple(ids), adapter, sampling, top, want_prompt))
    return rows


def _cut_at_stop(text: str, stop: str | list[str] | None) -> tuple[str, bool]:
    """The text before the earliest stop string found in it (OpenAI's semantics: whichever comes first in the
    text, not in the list), and whether one was."""
    found = [text.index(s) for s in ([stop] if isinstance(stop, str) else stop or []) if s and s in text]
    return (text[:min(found)], True) if found else (text, False)


def _openai_logprobs(engine: Engine, positions: list[Position], k: int) -> dict[str, Any]:
    """The legacy completions `logprobs` object: tokens, their logprobs, top-k maps, text offsets."""
    tokens = [engine.tokenizer.decode([p.token]) for p in positions]
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    top = [None if p.logprob is None else
           {engine.tokenizer.decode([i]): v for i, v in [(p.token, p.logprob), *p.top[:k]]} for p in positions]
    return {"tokens": tokens, "token_logprobs": [p.logprob for p in positions], "top_logprobs": top,
            "text_offset": offsets}


def _prompt_logprobs(engine: Engine, positions: list[Position], k: int) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = []
    for p in positions:
        if p.logprob is None:
            out.append(None)
            continue
        entry = {str(p.token): {"logprob": p.logprob, "rank": p.rank, "decoded_token": engine.tokenizer.decode([p.token])}}
        for rank, (token, value) in enumerate(p.top[:k], 1):
            entry.setdefault(str(token), {"logprob": value, "rank": rank,
                                          "decoded_token": engine.tokenizer.decode([token])})
        out.append(entry)
    return out


def completion_response(engine: Engine, request: CompletionRequest, rows: list[Row],
                        results: list[Completion]) -> dict[str, Any]:
    choices = []
    for index, (row, result) in enumerate(zip(rows, results)):
        generated = result.generated
        text = engine.tokenizer.decode([p.token for p in generated if p.token not in engine.stop],
                                       skip_special_tokens=request.skip_special_tokens)
        text, stopped = _cut_at_stop(text, request.stop)
        prompt_text = engine.tokenizer.decode(list(row.ids)) if request.echo else ""
        logprobs = None
        if request.logprobs is not None:
            shown = (result.prompt if request.echo else []) + generated
            logprobs = _openai_logprobs(engine, shown, request.logprobs)
        choices.append({
            "index": index, "text": prompt_text + text, "logprobs": logprobs,
            "finish_reason": "stop" if stopped else result.finish_reason, "stop_reason": None,
            "prompt_logprobs": _prompt_logprobs(engine, result.prompt, request.prompt_logprobs)
            if request.prompt_logprobs is not None else None,
        })
    prompt_tokens = sum(len(r.ids) for r in rows[::request.n])
    completion_tokens = sum(len(r.generated) for r in results)
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": request.model, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def chat_ids(engine: Engine, messages: list[dict[str, Any]]) -> list[int]:
    """The conversation through the model's chat template, or the plain template's labelled turns."""
    from tuneshift_hf.shared import PLAIN_TEMPLATE, uses_chat_template

    tok = engine.tokenizer
    if uses_chat_template(tok):
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tok(text, add_special_tokens=False)["input_ids"]

    turns = [str(m.get("content", "")) for m in messages if m.get("role") != "system"]
    prompt = turns[-1] if len(turns) == 1 else "\n".join(f"{m.get('role')}: {m.get('content', '')}" for m in messages)
    return tok(PLAIN_TEMPLATE.format(prompt=prompt))["input_ids"]


def chat_rows(engine: Engine, request: ChatRequest, adapter: str) -> list[Row]:
    ids = tuple(chat_ids(engine, request.messages))
    new = request.max_completion_tokens or request.max_tokens or 128
    return [Row(ids, adapter, Sampling(max_new_tokens=new, temperature=request.temperature, top_p=request.top_p,
                                       seed=(request.seed or 0) + j)) for j in range(request.n)]


def chat_response(engine: Engine, request: ChatRequest, rows: list[Row], results: list[Completion]) -> dict[str, Any]:
    from tuneshift_hf.shared import end_of_turn

    choices = []
    for index, result in enumerate(results):
        text = engine.tokenizer.decode([p.token for p in result.generated], skip_special_tokens=True).strip()
        text, stopped = _cut_at_stop(end_of_turn(engine.tokenizer, text), request.stop)
        choices.append({"index": index, "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop" if stopped else result.finish_reason, "logprobs": None})
    prompt_tokens = len(rows[0].ids)
    completion_tokens = sum(len(r.generated) for r in results)
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": request.model, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def adapter_for(engine: Engine, base_name: str, model: str) -> str | None:
    """The adapter a request's `model` names: BASE for the base model, None when nothing of that name is served."""
    if model == base_name:
        return BASE
    return model if model in engine.adapters else None
