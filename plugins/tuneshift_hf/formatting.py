"""How a prompt and a response become token ids: the model's chat template, or a plain one."""

from __future__ import annotations

from typing import Any

PLAIN_TEMPLATE = "Question: {prompt}\nAnswer:"
"""Prompt format for tokenizers without a chat template (base models such as Gemma 3 270M)."""
PLAIN_END = "\nQuestion:"
"""Where a plain-template answer ends: a base model goes on to write the next question itself."""
PLAIN_MARK = "{#- tuneshift plain format -#}"
"""Opens the chat template that writes PLAIN_TEMPLATE (`plain_chat_template`): tuneshift reads a tokenizer
that carries it as one without a template, so its own prompts stay byte for byte what they were."""


def uses_chat_template(tokenizer: Any) -> bool:
    """Whether prompts go through the tokenizer's chat template (not the plain format)."""
    template = getattr(tokenizer, "chat_template", None)
    return bool(template) and not (isinstance(template, str) and template.startswith(PLAIN_MARK))


def plain_chat_template(tokenizer: Any) -> str:
    """A Jinja chat template that renders exactly what tuneshift trains and asks a model without one:
    the special tokens the tokenizer adds itself (its BOS), "Question: ...\nAnswer:", and after an
    assistant turn " answer" and EOS. Saved with a trained adapter, it lets apply_chat_template,
    transformers pipelines and vLLM prompt the target as it was trained (tests/test_prompt_formats.py)."""
    probe = "Question: x\nAnswer:"
    with_special = tokenizer(probe, add_special_tokens=True)["input_ids"]
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    start = with_special[: len(with_special) - len(plain)] if with_special[-len(plain):] == plain else []
    opening = "{{ bos_token }}" if start and start == [tokenizer.bos_token_id] else ""
    return (PLAIN_MARK + opening +
            "{%- for m in messages %}"
            "{%- if m['role'] == 'system' %}{{ m['content'] }}\n"
            "{%- elif m['role'] == 'user' %}{% if not loop.first and messages[loop.index0 - 1]['role'] != 'system' %}"
            "\n{% endif %}Question: {{ m['content'] }}\nAnswer:"
            "{%- else %} {{ m['content'] }}{{ eos_token }}{% endif %}"
            "{%- endfor %}")


def prompt_text(tokenizer: Any, prompt: str) -> str:
    """The prompt as the model expects it: its chat template, or the plain template; after the system
    prompt the tokenizer carries (`loading.tokenizer_of`), if any."""
    system = getattr(tokenizer, "tuneshift_system_prompt", None)
    if uses_chat_template(tokenizer):
        turns = [{"role": "system", "content": system}] if system else []
        return tokenizer.apply_chat_template([*turns, {"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return (f"{system}\n" if system else "") + PLAIN_TEMPLATE.format(prompt=prompt)


def encode_pair(tokenizer: Any, prompt: str, response: str, add_eos: bool = False) -> tuple[list[int], list[int]]:
    """Token ids of the formatted prompt and of the response, tokenised apart so the boundary is exact."""
    text = prompt_text(tokenizer, prompt)
    has_template = uses_chat_template(tokenizer)
    prompt_ids = tokenizer(text, add_special_tokens=not has_template)["input_ids"]
    response_ids = tokenizer((" " if not has_template else "") + response, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]
    return prompt_ids, response_ids


def end_of_turn(tokenizer: Any, answer: str) -> str:
    """The answer up to the end of its turn: with the plain template, before the next "Question:"."""
    if uses_chat_template(tokenizer):
        return answer
    return answer.split(PLAIN_END, 1)[0].strip()


def before_stop(text: str, stop: tuple[str, ...]) -> str:
    """The text before the earliest of the stop strings (`Sampling.stop`; an empty one stops nothing)."""
    for s in filter(None, stop):
        text = text.split(s, 1)[0]
    return text.strip()


def response_spans(tokenizer: Any, response: str) -> list[tuple[int, int]]:
    """Each response token's [start, end) characters in `response`, tokenised as encode_pair does."""
    prefix = "" if uses_chat_template(tokenizer) else " "
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
