"""Score (prompt, response) pairs: mean NLL of the response under the fine-tuned model and its base.

One copy of the weights serves both when the fine-tuned model is base +
adapter: each batch goes through the model once with its rows doubled, the
first half with the adapter and the second half without (peft's mixed-batch
`adapter_names`, "__base__" for no adapter). Adapters peft cannot mix (DoRA,
merged) fall back to a second pass under `disable_adapter()`. A full
fine-tune is a second model and a second pass.

Cost: pairs are sorted by length and packed into batches of a fixed token
budget, left padded (explicit position ids), so every response ends at the
last position and only the last max-response-length hidden states reach the
LM head, and only at real response tokens (a 49k-262k vocabulary makes the
head a large share of the work otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from pydantic import Field

from tuneshift.api import ModelSpec, Score, Scorer

from .batching import plan_batches
from .formatting import encode_pair, response_spans
from .mixing import LeadingRows, adapter_on_leading_rows
from .precision import PrecisionOptions, bfloat16_matmuls, identity_with_precision

Encoded = tuple[list[int], list[int]]
HEAD_ELEMENTS = 1 << 24
"""Logits per LM-head call (64 MiB in float32): a 49k vocabulary takes 341 tokens at a time, 262k 64."""


class HFScorerOptions(PrecisionOptions):
    batch_size: int = Field(32, ge=1, description="most pairs in one forward pass")
    max_batch_tokens: int = Field(2048, ge=16, description="most padded tokens in one forward pass, all rows")
    mixed_batch: bool = Field(True, description="base and adapter rows in one pass (else disable_adapter passes)")
    token_logprobs: bool = Field(False, description="add per-token log-probabilities to Score.extra")


@contextmanager
def capture_head_input(model: Any) -> Iterator[dict[str, Any]]:
    """Let the LM head see no positions and keep its input: the log-probabilities are computed from it
    at response tokens only. Does nothing when the head is not a plain Linear (an adapter on lm_head)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    captured: dict[str, Any] = {"head": head if type(head) is torch.nn.Linear else None}
    if captured["head"] is None:
        yield captured
        return

    def grab(module: Any, args: tuple) -> tuple:
        captured["hidden"] = args[0]
        return (args[0][:, :0],) + tuple(args[1:])

    handle = head.register_forward_pre_hook(grab)
    try:
        yield captured
    finally:
        handle.remove()


def _token_logprobs(hidden: Any, targets: Any, head: Any, softcap: float | None) -> Any:
    """log p(target) for each row of hidden ([M, H] or logits [M, V] when head is None), in chunks."""
    import torch

    out = []
    vocab = head.out_features if head is not None else hidden.shape[-1]
    chunk = max(16, HEAD_ELEMENTS // vocab)
    for start in range(0, hidden.shape[0], chunk):
        h = hidden[start:start + chunk]
        logits = (head(h) if head is not None else h).float()
        if head is not None and softcap:
            logits = torch.tanh(logits / softcap) * softcap
        # one fused log-softmax and gather: logsumexp is a chain of generic kernels on CPU (a fifth of the time)
        out.append(-torch.nn.functional.cross_entropy(logits, targets[start:start + chunk], reduction="none"))
    return torch.cat(out) if out else hidden.new_zeros(0)


def response_logprobs(model: Any, pad_id: int, rows: list[Encoded],
                      adapter_names: list[str] | None = None, wrapper: Any = None) -> list[Any]:
    """Per-token log-probabilities of each row's response given its prompt, one forward pass.

    Left padded, so responses end together and `logits_to_keep` cuts the rest; position ids count
    real tokens only, so a row's result does not depend on its batch. `wrapper` (a data-parallel
    wrapper of `model`) runs the forward pass instead, so its gradient hooks see it.
    """
    import torch

    device = next(model.parameters()).device
    width = max(len(p) + len(r) for p, r in rows)
    longest = max(len(r) for _, r in rows)
    input_ids = torch.tensor([[pad_id] * (width - len(p) - len(r)) + p + r for p, r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(p) - len(r)) + [1] * (len(p) + len(r)) for p, r in rows], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    kwargs = {"adapter_names": adapter_names} if adapter_names is not None else {}
    with capture_head_input(model) as captured, bfloat16_matmuls(model):
        out = (model if wrapper is None else wrapper)(
            input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=longest + 1,
            use_cache=False, **kwargs)
    states = captured.get("hidden")
    states = (states if states is not None else out.logits)[:, :longest]  # predicts the last `longest` tokens
    lengths = torch.tensor([len(r) for _, r in rows], device=device)
    select = torch.arange(longest, device=device)[None, :] >= (longest - lengths)[:, None]
    targets = input_ids[:, width - longest:][select]
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    softcap = getattr(config, "final_logit_softcapping", None)  # Gemma 2 caps its logits
    head = captured["head"] if captured.get("hidden") is not None else None
    lp = _token_logprobs(states[select], targets, head, softcap)
    return list(lp.split(lengths.tolist()))


def same_vocabulary(a: Any, b: Any) -> bool:
    return a is b or (len(a) == len(b) and a.get_vocab() == b.get_vocab())


CHARS_PER_TOKEN = 64
"""A text over this many characters per context token is refused untokenised (a 50 MB line would
make the tokenizer work for minutes or fail deep inside it)."""


def context_of(loaded: Any) -> int | None:
    """How many tokens the model takes: its max_position_embeddings, else its tokenizer's
    model_max_length when that is a real number (transformers' 'unset' is 1e30), else None."""
    from .answering import context_limit

    config = loaded.model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for limit in (context_limit(loaded.model), getattr(text, "max_position_embeddings", None),
                  getattr(loaded.tokenizer, "model_max_length", None)):
        if isinstance(limit, int) and 0 < limit < 10**8:
            return limit
    return None


def refuse_long(tokenizer: Any, pairs: list[tuple[str, str]], limit: int | None) -> tuple[int, str] | None:
    """The first pair whose prompt (formatted) and response exceed `limit` tokens, or whose response
    has no tokens, and why."""
    for i, (prompt, response) in enumerate(pairs):
        chars = len(prompt) + len(response)
        if limit is not None and chars > CHARS_PER_TOKEN * limit:
            return i, f"prompt and response are {chars} characters, over the model's context of {limit} tokens"
        p, r = encode_pair(tokenizer, prompt, response)
        if not r:
            return i, "the response encodes to no tokens; an empty response cannot be scored"
        if limit is not None and len(p) + len(r) > limit:
            return i, f"prompt and response are {len(p) + len(r)} tokens, over the model's context of {limit}"
    return None


class HFScorer(Scorer):
    name = "hf-scorer"
    default = True
    description = "transformers/peft perplexity of the answer under fine-tuned and base (one weights copy)"
    Options = HFScorerOptions

    _mixed_ok: bool | None = None
    OUTPUT_VERSION = 2
    """Bumped when Score.extra gains fields, so cached scores from an older release are not reused."""

    def identity(self) -> dict[str, Any]:
        return identity_with_precision({**super().identity(), "output": self.OUTPUT_VERSION}, self.options)
  # learnt on the first adapter batch: does peft mix this adapter?

    def check(self) -> None:
        from .checks import check_spec

        self.options.resolved()  # a bad $TUNESHIFT_PRECISION is refused now
        check_spec(self.context.teacher)

    def release(self) -> None:
        from .loading import clear

        clear()  # the process's loaded models (the answerer shares them): reloaded on the next call

    def check_pairs(self, model: ModelSpec, pairs: list[tuple[str, str]]) -> tuple[int, str] | None:
        """Before scoring: the index of the first pair too long for the fine-tuned model or its base
        (or with an empty response), and the reason; None when every pair can be scored."""
        from .loading import base_of, load

        finetuned, base = load(model, self.options.precision), base_of(model, self.options.precision)
        if base is finetuned or same_vocabulary(finetuned.tokenizer, base.tokenizer):  # one encoding for both
            limits = [c for c in (context_of(finetuned), context_of(base)) if c is not None]
            return refuse_long(finetuned.tokenizer, pairs, min(limits, default=None))
        refused = [refuse_long(x.tokenizer, pairs, context_of(x)) for x in (finetuned, base)]
        return min((r for r in refused if r is not None), default=None)

    def score(self, model: ModelSpec, pairs: list[tuple[str, str]]) -> list[Score]:
        import torch

        from .loading import base_of, load

        with torch.inference_mode():
            return self._score(pairs, load(model, self.options.precision), base_of(model, self.options.precision))

    def _score(self, pairs: list[tuple[str, str]], finetuned: Any, base: Any) -> list[Score]:
        encoded = [encode_pair(finetuned.tokenizer, p, r) for p, r in pairs]
        if any(not r for _, r in encoded):
            raise ValueError("a response encodes to no tokens; empty responses cannot be scored")
        if base is not finetuned and not same_vocabulary(finetuned.tokenizer, base.tokenizer):
            return self._score_with_stand_in(pairs, encoded, finetuned, base)
        o = self.options
        mixed = finetuned.has_adapter and o.mixed_batch and self._mixed_ok is not False
        lengths = [len(p) + len(r) for p, r in encoded]
        results: list[Score | None] = [None] * len(pairs)
        with adapter_on_leading_rows(finetuned.model) if mixed else nullcontext() as leading:
            for batch in plan_batches(lengths, o.batch_size, o.max_batch_tokens, 2 if mixed else 1):
                rows = [encoded[i] for i in batch]
                ft, b = self._both(rows, finetuned, base, leading)
                for i, lp_ft, lp_b in zip(batch, ft, b):
                    results[i] = self._result(lp_ft, lp_b, finetuned.tokenizer, pairs[i][1])
        return results  # type: ignore[return-value]

    def _both(self, rows: list[Encoded], finetuned: Any, base: Any,
              leading: LeadingRows | None = None) -> tuple[list[Any], list[Any]]:
        """Log-probabilities under the fine-tuned model and under the base, for one batch."""
        pad = finetuned.tokenizer.pad_token_id
        if leading is not None:  # plain LoRA: the adapter on the leading half of the doubled rows
            leading.rows = len(rows)
            both = response_logprobs(finetuned.model, pad, rows + rows)
            self._mixed_ok = True
            return both[:len(rows)], both[len(rows):]
        if finetuned.has_adapter and self.options.mixed_batch and self._mixed_ok is not False:
            model = finetuned.model
            names = [model.active_adapter] * len(rows) + ["__base__"] * len(rows)
            try:
                both = response_logprobs(model, pad, rows + rows, adapter_names=names)
                self._mixed_ok = True
                return both[:len(rows)], both[len(rows):]
            except (ValueError, TypeError):  # peft refuses to mix this adapter (DoRA, merged, ...)
                if self._mixed_ok:
                    raise
                self._mixed_ok = False
        ft = response_logprobs(finetuned.model, pad, rows)
        if base is finetuned and not finetuned.has_adapter:
            return ft, ft
        off = base.model.disable_adapter() if finetuned.has_adapter else nullcontext()
        with off:
            return ft, response_logprobs(base.model, base.tokenizer.pad_token_id, rows)

    def _logprobs(self, loaded: Any, encoded: list[Encoded]) -> list[Any]:
        """Response log-probabilities of one model alone, batched like the paired path."""
        out: list[Any] = [None] * len(encoded)
        lengths = [len(p) + len(r) for p, r in encoded]
        for batch in plan_batches(lengths, self.options.batch_size, self.options.max_batch_tokens, 1):
            rows = [encoded[i] for i in batch]
            for i, lp in zip(batch, response_logprobs(loaded.model, loaded.tokenizer.pad_token_id, rows)):
                out[i] = lp
        return out

    def _score_with_stand_in(self, pairs: list[tuple[str, str]], encoded: list[Encoded], finetuned: Any,
                             base: Any) -> list[Score]:
        """A stand-in base with its own tokenizer: each model scores its own tokens, and both sums are
        divided by the fine-tuned model's token count, so exp(nll_base - nll_finetuned) stays a ratio of
        the response's likelihoods."""
        own = [encode_pair(base.tokenizer, p, r) for p, r in pairs]
        ft, b = self._logprobs(finetuned, encoded), self._logprobs(base, own)
        return [self._result(lp_ft, lp_b, finetuned.tokenizer, r) for lp_ft, lp_b, (_, r) in zip(ft, b, pairs)]

    def _result(self, lp_ft: Any, lp_b: Any, tokenizer: Any = None, response: str = "") -> Score:
        n = int(lp_ft.numel())
        extra: dict[str, Any] = {"min_logprob_finetuned": float(lp_ft.min())}  # the least confident token
        if self.options.token_logprobs:
            extra.update({"token_logprobs_finetuned": lp_ft.tolist(), "token_logprobs_base": lp_b.tolist()})
            spans = response_spans(tokenizer, response) if tokenizer is not None else []
            if len(spans) == n:
                extra["token_spans"] = [list(span) for span in spans]
        return Score(nll_finetuned=-float(lp_ft.double().sum()) / n, nll_base=-float(lp_b.double().sum()) / n,
                     n_tokens=n, extra=extra)
