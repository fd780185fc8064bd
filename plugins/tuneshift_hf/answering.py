"""Answer prompts with a transformers model: batched, left padded, greedy or sampled.

Prompts are sorted by length and packed into batches under a token budget
(prompt plus new tokens, which bounds the KV cache), left padded so every row
continues at the same position; `generate` derives the position ids from the
attention mask and keeps a KV cache, so each new token costs one short step.
A row stops at end of turn (the tokenizer's and the generation config's EOS;
with the plain template also at a next "Question:", where its answer is cut)
and at the caller's `Sampling.stop` strings: a base model continuing the
pattern would otherwise run every row of the batch to `max_new_tokens`.
Sampling is seeded per call in a forked RNG: the same call gives the same
answers, and the caller's global RNG is left as it was. It draws among the
top-k tokens only (sampling.py), and prompts of one call that begin alike
compute their common beginning once (prefixes.py): few-shot requests are
mostly their worked examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import Field

from tuneshift.api import Answer, Answerer, ModelSpec, Sampling

from .batching import plan_batches
from .formatting import PLAIN_END, before_stop, end_of_turn, prompt_text, uses_chat_template
from .precision import PrecisionOptions, bfloat16_matmuls, identity_with_precision
from .prefixes import accepts, cache_argument, prefix_groups, repeated, shareable
from .sampling import short_list_sampler, top_k_of


@contextmanager
def contiguous_head_input(model: Any) -> Iterator[None]:
    """At prefill transformers gives the LM head the last position of each row, a strided 3-D view; torch's
    CPU matmul of such a view with a frozen weight (every peft base) copies the whole head weight per row:
    25 s for one batch of 16 through Gemma 3's 262k-row head in bfloat16, against 0.03 s for a contiguous
    input. Copying the input (rows x hidden) first costs nothing."""
    import torch

    head = model.get_output_embeddings()
    if head is None:
        yield
        return
    handle = head.register_forward_pre_hook(
        lambda module, args: tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args))
    try:
        yield
    finally:
        handle.remove()


class HFAnswererOptions(PrecisionOptions):
    batch_size: int = Field(32, ge=1, description="most prompts generated together")
    max_batch_tokens: int = Field(4096, ge=16, description="most (prompt + new) tokens computed in one batch, all "
                                  "rows; a beginning the rows share counts once")


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End of turn: the tokenizer's EOS and whatever the model's generation config calls EOS."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    return sorted({i for i in [tokenizer.eos_token_id, *ids] if isinstance(i, int)})


def stop_ids(loaded: Any) -> list[int]:
    return stop_token_ids(loaded.model, loaded.tokenizer)


def context_limit(model: Any) -> int:
    return getattr(model.config, "max_position_embeddings", None) or 10**9


class HFAnswerer(Answerer):
    name = "hf-answerer"
    default = True
    description = "transformers generation (the teacher, the target), chat template or a plain one"
    Options = HFAnswererOptions

    def check(self) -> None:
        from .checks import check_spec

        self.options.resolved()  # a bad $TUNESHIFT_PRECISION is refused now
        check_spec(self.context.teacher, warn_no_template=True, role="teacher")  # its answers are the dataset
        if self.context.target is not None:
            check_spec(self.context.target, role="target")

    def identity(self) -> dict[str, Any]:
        return identity_with_precision(super().identity(), self.options)

    def release(self) -> None:
        from .loading import clear

        clear()  # the process's loaded models (the scorer shares them): reloaded on the next call

    def answer(self, model: ModelSpec, prompts: list[str], sampling: Sampling) -> list[Answer]:
        import torch

        from .loading import load

        loaded = load(model, self.options.precision)
        tok = loaded.tokenizer
        limit = context_limit(loaded.model)
        has_template = uses_chat_template(tok)
        ids = [tok(prompt_text(tok, p), add_special_tokens=not has_template)["input_ids"] for p in prompts]
        out: list[Answer | None] = [None] * len(prompts)
        runnable = []
        for i, prompt_ids in enumerate(ids):
            if len(prompt_ids) + sampling.max_new_tokens <= limit:
                runnable.append(i)
            else:
                out[i] = Answer(None, f"prompt too long: {len(prompt_ids)} tokens + {sampling.max_new_tokens} "
                                      f"new exceed the context of {limit}")
        with torch.random.fork_rng(devices=[loaded.device.index or 0] if loaded.device.type == "cuda" else []):
            torch.manual_seed(sampling.seed)
            asked = [ids[i] for i in runnable]
            for shared, group in prefix_groups(asked, shareable(loaded.model, asked, sampling)):
                members = [runnable[j] for j in group]
                head = ids[members[0]][:shared]
                prefix = (head, prefill(loaded, head)) if shared else None
                lengths = [len(ids[i]) - shared + sampling.max_new_tokens for i in members]
                budget = max(self.options.max_batch_tokens - shared, 1)  # the beginning is computed once
                for batch in plan_batches(lengths, self.options.batch_size, budget):
                    rows = [members[j] for j in batch]
                    texts = self._generate(loaded, [ids[i][shared:] for i in rows], sampling, prefix)
                    for i, text in zip(rows, texts):
                        out[i] = Answer(text)
        return out  # type: ignore[return-value]

    def _generate(self, loaded: Any, ids: list[list[int]], sampling: Sampling,
                  prefix: tuple[list[int], Any] | None = None) -> list[str]:
        """One batch. With `prefix` (its tokens, their computed cache) every row continues it: the padding
        goes between it and each row's own tokens, and the attention mask and the positions skip it."""
        import torch

        tok = loaded.tokenizer
        head, cache = prefix or ([], None)
        longest = max(len(i) for i in ids)
        width = len(head) + longest
        pad = tok.pad_token_id
        input_ids = torch.tensor([head + [pad] * (longest - len(i)) + i for i in ids], device=loaded.device)
        mask = torch.tensor([[1] * len(head) + [0] * (longest - len(i)) + [1] * len(i) for i in ids],
                            device=loaded.device)
        kwargs: dict[str, Any] = {"do_sample": False}  # sampled too: the processor draws, greedy takes its token
        if sampling.temperature > 0:
            kwargs["logits_processor"] = [short_list_sampler(sampling.temperature, sampling.top_p,
                                                             top_k_of(loaded.model))]
        strings = list(sampling.stop) + ([] if uses_chat_template(tok) else [PLAIN_END])
        if strings:
            kwargs["stopping_criteria"] = [text_stop(tok, width, strings)]
        stop = stop_ids(loaded)
        with torch.inference_mode(), bfloat16_matmuls(loaded.model), contiguous_head_input(loaded.model):
            if cache is not None:
                kwargs[cache_argument(loaded.model)] = repeated(cache, len(ids))
            output = loaded.model.generate(input_ids=input_ids, attention_mask=mask, use_cache=True,
                                           max_new_tokens=sampling.max_new_tokens, pad_token_id=pad,
                                           eos_token_id=stop or None, **kwargs)
        texts = [end_of_turn(tok, tok.decode(row[width:], skip_special_tokens=True).strip()) for row in output]
        return [before_stop(text, sampling.stop) for text in texts]


def prefill(loaded: Any, tokens: list[int]) -> Any:
    """The KV cache of `tokens` (one row), for batches that all continue them (tuneshift_hf.prefixes)."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=loaded.model.config)
    kwargs = {cache_argument(loaded.model): cache}
    if accepts(loaded.model, "logits_to_keep"):
        kwargs["logits_to_keep"] = 1  # the logits are not wanted: skip the head's rows but one
    with torch.inference_mode(), bfloat16_matmuls(loaded.model), contiguous_head_input(loaded.model):
        loaded.model(input_ids=torch.tensor([tokens], device=loaded.device), use_cache=True, **kwargs)
    return cache


def text_stop(tok: Any, width: int, strings: list[str]) -> Any:
    """A row is done once its new text holds a stop string. Decoded, not matched by token: transformers'
    `stop_strings` refuses a tokenizer whose vocabulary cannot spell a string."""
    import torch
    from transformers import StoppingCriteria

    class TextStop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            texts = tok.batch_decode(input_ids[:, width:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in strings) for t in texts], device=input_ids.device)

    return TextStop()
