"""How a prompt and a response become token ids: the model's chat template, or a plain one."""

from __future__ import annotations

from typing import Any

PLAIN_TEMPLATE = "Question: {prompt}\nAnswer:"
"""Prompt format for tokenizers without a chat template (base models such as Gemma 3 270M)."""
PLAIN_END = "\nQuestion:"
"""Where a plain-template answer ends: a base model goes on to write the next question itself."""


def prompt_text(tokenizer: Any, prompt: str) -> str:
    """The prompt as the model expects it: its chat template, or the plain template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return PLAIN_TEMPLATE.format(prompt=prompt)


def encode_pair(tokenizer: Any, prompt: str, response: str, add_eos: bool = False) -> tuple[list[int], list[int]]:
    """Token ids of the formatted prompt and of the response, tokenised apart so the boundary is exact."""
    text = prompt_text(tokenizer, prompt)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    prompt_ids = tokenizer(text, add_special_tokens=not has_template)["input_ids"]
    response_ids = tokenizer((" " if not has_template else "") + response, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]
    return prompt_ids, response_ids


def end_of_turn(tokenizer: Any, answer: str) -> str:
    """The answer up to the end of its turn: with the plain template, before the next "Question:"."""
    if getattr(tokenizer, "chat_template", None):
        return answer
    return answer.split(PLAIN_END, 1)[0].strip()


def response_spans(tokenizer: Any, response: str) -> list[tuple[int, int]]:
    """Each response token's [start, end) characters in `response`, tokenised as encode_pair does."""
    prefix = "" if getattr(tokenizer, "chat_template", None) else " "
    offsets = tokenizer(prefix + response, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [(max(0, a - len(prefix)), max(0, b - len(prefix))) for a, b in offsets]


def span_weights(tokenizer: Any, response: str, spans: list[list[int]], n_tokens: int) -> list[float]:
    """1.0 for each response token that overlaps a [start, end) character span of `response`, else 0.0.

    Spans come from another model's tokens (a selector scored the teacher's tokens), so they are
    carried as characters and mapped onto this tokenizer's tokens by offsets. Tokens past the
    response's text (an appended EOS) keep weight 1: the model still learns where to stop.
    """
    weights = [1.0 if any(start < b and a < end for a, b in spans) else 0.0
               for start, end in response_spans(tokenizer, response)]
    return (weights + [1.0] * n_tokens)[:n_tokens]
