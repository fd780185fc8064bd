"""Prompts that begin alike share one computation of their common beginning.

Few-shot requests repeat their worked examples in every prompt: the augment
stage's paraphrase requests are about 146 shared tokens and 12 of the
question's own. Prompts whose first `MIN_SHARED` tokens are the same form a
group; the group's common beginning goes through the model once, and each
batch of the group continues from a copy of that KV cache, so a row costs only
its own tokens. Shorter shared beginnings (a chat template's system turn) are
left alone, and so is a call whose rows would outgrow a sliding attention
window (the cache of such a layer keeps only the window's last tokens) or a
model with recurrent layers (their state would take in the padding).
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from tuneshift.api import Sampling

MIN_SHARED = 64
"""Fewest tokens a group's prompts share before their beginning is computed once."""


def prefix_groups(ids: list[list[int]], enabled: bool = True) -> list[tuple[int, list[int]]]:
    """(tokens shared, row indices) for each group: rows with the same first `MIN_SHARED` tokens share their
    whole common beginning (each row keeps one token of its own at least); every other row comes first, in
    order, with 0."""
    if not enabled:
        return [(0, list(range(len(ids))))]
    groups: dict[tuple[int, ...], list[int]] = {}
    alone: list[int] = []
    for i, row in enumerate(ids):
        if len(row) > MIN_SHARED:
            groups.setdefault(tuple(row[:MIN_SHARED]), []).append(i)
        else:
            alone.append(i)
    shared = []
    for members in groups.values():
        if len(members) == 1:
            alone.extend(members)
        else:
            shared.append((common_length([ids[i] for i in members]), members))
    return ([(0, sorted(alone))] if alone else []) + shared


def common_length(rows: list[list[int]]) -> int:
    """The length of the rows' common beginning, short of the shortest row's last token."""
    first, limit = rows[0], min(len(r) for r in rows) - 1
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def shareable(model: Any, ids: list[list[int]], sampling: Sampling) -> bool:
    """Whether every layer is attention and the rows with their new tokens fit in its sliding window, if any."""
    window = getattr(model.config, "sliding_window", None)
    longest = max((len(i) for i in ids), default=0) + sampling.max_new_tokens
    return attention_only(model) and (not window or longest <= window)


def attention_only(model: Any) -> bool:
    """Whether the model's cache holds attention keys and values only. The mask keeps attention from reading
    the padding between a shared beginning and a row's own tokens; a recurrent or linear-attention layer
    (Mamba, hybrids) would take the padding into its state."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        layers = DynamicCache(config=model.config).layers
    except (AttributeError, KeyError, TypeError, ValueError):  # a config transformers cannot build a cache from
        return False
    return bool(layers) and all(isinstance(layer, DynamicLayer) for layer in layers)


def accepts(model: Any, argument: str) -> bool:
    """Whether the model's forward (the base model's, under a peft wrapper) takes `argument`."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return argument in inspect.signature(inner.forward).parameters


def cache_argument(model: Any) -> str:
    """What this transformers calls the KV cache argument: `cache` since it renamed `past_key_values`."""
    return "cache" if accepts(model, "cache") else "past_key_values"


def repeated(cache: Any, rows: int) -> Any:
    """A copy of a one-row cache for a batch of `rows` (generation appends to it)."""
    batch = copy.deepcopy(cache)
    batch.batch_repeat_interleave(rows)
    return batch
