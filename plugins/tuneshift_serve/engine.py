"""The model behind `tuneshift serve`: one copy of the base weights with every adapter attached.

Each row of a batch names its adapter (peft's mixed-batch `adapter_names`,
"__base__" for the bare base), as vLLM's multi-LoRA serving does, so base and
adapter requests share one forward pass. Two operations cover the endpoints:
`forward` gives every position's log-probability of its actual token (with
rank and top-k, for `echo` and `prompt_logprobs`) and the distribution of the
next token (a one-token completion needs no second pass); `generate` runs
transformers' `generate` with a KV cache for longer completions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tuneshift.api import Sampling, UsageError, local_model
from tuneshift_hf.shared import (
    HEAD_ELEMENTS,
    capture_head_input,
    check_adapter,
    context_limit,
    load_causal_lm,
    load_tokenizer,
    stop_token_ids,
)
from tuneshift_hf.shared import load_error_reason as _first_reason

BASE = "__base__"


@dataclass
class Position:
    """One position of a sequence: its token, log p(token | earlier tokens), rank, and the top-k there."""

    token: int
    logprob: float | None
    rank: int | None = None
    top: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class Completion:
    """What one row of a request gets back: prompt positions (when asked), new tokens, why it stopped."""

    prompt: list[Position]
    generated: list[Position]
    finish_reason: str


@dataclass(frozen=True)
class Row:
    """One sequence to run: its token ids, the adapter name (or BASE) and how to continue it."""

    ids: tuple[int, ...]
    adapter: str
    sampling: Sampling
    top_k: int = 0
    want_prompt: bool = False


class Engine:
    def __init__(self, base: str, adapters: dict[str, str]) -> None:
        self.tokenizer = load_tokenizer(base)
        model = load_causal_lm(base)
        for name, path in adapters.items():
            check_adapter(path, base)
            from peft import PeftModel

            try:
                if not isinstance(model, PeftModel):
                    model = PeftModel.from_pretrained(model, path, adapter_name=name)
                else:
                    model.load_adapter(path, adapter_name=name)
            except (RuntimeError, ValueError, KeyError) as exc:  # the whole reason, not the loader's header line
                raise UsageError(f"adapter {path}: does not fit base {base} ({_first_reason(exc)}); "
                                 "was it trained on another base model?") from None
        self.model = model.eval()
        self.adapters = list(adapters)
        self.limit = context_limit(model)
        self.stop = stop_token_ids(self.model, self.tokenizer)
        self.vocab = self.model.get_output_embeddings().weight.shape[0]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def check(self, rows: list[Row]) -> None:
        for row in rows:
            if not row.ids:
                raise UsageError("a prompt encodes to no tokens")
            if len(row.ids) + row.sampling.max_new_tokens > self.limit:
                raise UsageError(f"prompt of {len(row.ids)} tokens + {row.sampling.max_new_tokens} new exceeds "
                                 f"the context of {self.limit}")
            if any(not 0 <= t < self.vocab for t in row.ids):
                raise UsageError(f"token ids must lie in [0, {self.vocab})")

    def _kwargs(self, rows: list[Row]) -> dict[str, Any]:
        return {"adapter_names": [r.adapter for r in rows]} if self.adapters else {}

    @torch.inference_mode()
    def forward(self, rows: list[Row]) -> list[Completion]:
        """Prompt log-probabilities and at most one new token per row, from one forward pass."""
        width = max(len(r.ids) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r.ids)) + list(r.ids) for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r.ids)) + [1] * len(r.ids) for r in rows], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with capture_head_input(self.model) as captured:
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                             **self._kwargs(rows))
        states = captured.get("hidden")
        head = captured["head"] if states is not None else None
        states = states if states is not None else out.logits
        return [self._row(r, states[i, width - len(r.ids):], head) for i, r in enumerate(rows)]

    def _logits(self, hidden: torch.Tensor, head: Any) -> torch.Tensor:
        logits = (head(hidden) if head is not None else hidden).float()
        config = self.model.config.get_text_config() if hasattr(self.model.config, "get_text_config") else None
        softcap = getattr(config or self.model.config, "final_logit_softcapping", None)
        return torch.tanh(logits / softcap) * softcap if softcap else logits

    def _row(self, row: Row, hidden: torch.Tensor, head: Any) -> Completion:
        prompt: list[Position] = [Position(row.ids[0], None)]
        chunk = max(16, HEAD_ELEMENTS // self.vocab)
        start = 0 if row.want_prompt else len(row.ids) - 1
        for lo in range(start, len(row.ids), chunk):
            logprobs = torch.log_softmax(self._logits(hidden[lo:lo + chunk], head), dim=-1)
            for j, lp in enumerate(logprobs, lo):
                if j + 1 < len(row.ids):
                    prompt.append(position(row.ids[j + 1], lp, row.top_k))
                else:
                    last = lp
        generated: list[Position] = []
        if row.sampling.max_new_tokens >= 1:
            token = pick(last, row.sampling)
            generated.append(position(token, last, row.top_k))
        finish = "stop" if generated and generated[-1].token in self.stop else "length"
        return Completion(prompt if row.want_prompt else [], generated, finish)

    @torch.inference_mode()
    def generate(self, rows: list[Row]) -> list[Completion]:
        """Several new tokens per row (same sampling for the batch), with their log-probabilities."""
        sampling = rows[0].sampling
        width = max(len(r.ids) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r.ids)) + list(r.ids) for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r.ids)) + [1] * len(r.ids) for r in rows], device=self.device)
        kwargs: dict[str, Any] = {"do_sample": False}
        if sampling.temperature > 0:
            kwargs = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sampling.seed)
            out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=sampling.max_new_tokens,
                                      pad_token_id=pad, eos_token_id=self.stop or None, output_logits=True,
                                      return_dict_in_generate=True, **kwargs, **self._kwargs(rows))
        prompts = self.forward([Row(r.ids, r.adapter, Sampling(max_new_tokens=0), r.top_k, True) for r in rows]) \
            if any(r.want_prompt for r in rows) else None
        results = []
        for i, row in enumerate(rows):
            generated = []
            for step, logits in enumerate(out.logits):
                token = int(out.sequences[i, width + step])
                generated.append(position(token, torch.log_softmax(logits[i].float(), -1), row.top_k))
                if token in self.stop:
                    break
            finish = "stop" if generated and generated[-1].token in self.stop else "length"
            results.append(Completion(prompts[i].prompt if prompts and row.want_prompt else [], generated, finish))
        return results


def position(token: int, logprobs: torch.Tensor, top_k: int) -> Position:
    """The entry of `token` in one position's log-probabilities: value, rank (1 = most likely), top-k."""
    value = logprobs[token]
    rank = int((logprobs > value).sum()) + 1
    top: list[tuple[int, float]] = []
    if top_k > 0:
        values, indices = logprobs.topk(min(top_k, logprobs.shape[-1]))
        top = [(int(i), float(v)) for v, i in zip(values, indices)]
    return Position(token, float(value), rank, top)


def pick(logprobs: torch.Tensor, sampling: Sampling) -> int:
    """The next token: greedy at temperature 0, else sampled (top-p) with the request's seed."""
    if sampling.temperature <= 0:
        return int(logprobs.argmax())
    probs = torch.softmax(logprobs / sampling.temperature, -1)
    if sampling.top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < sampling.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    generator = torch.Generator(device=probs.device).manual_seed(sampling.seed)
    return int(torch.multinomial(probs, 1, generator=generator))


def adapter_paths(items: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, path = item.partition("=")
        path = local_model(path, "--adapter") if sep and path else path  # a hub id: its snapshot folder
        if not sep or not key or not Path(path).is_dir():
            raise UsageError(f"--adapter {item!r}: expected NAME=DIR with an existing directory or a hub id")
        parsed[key] = path
    return parsed
