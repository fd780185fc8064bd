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
