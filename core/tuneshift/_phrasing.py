"""Other phrasings of a question that keep every named entity: knowledge augmentation trains on them, a
consistency check asks them. A phrasing that drops a name asks another question."""

from __future__ import annotations

from tuneshift._agreement import entities
from tuneshift._rewrites import rewrites
from tuneshift._text import normalise

RULES = ("Tell me: {q}", "Question: {q}", "{q} Please answer briefly.", "Quick question: {q}",
         "I would like to know something. {q}", "Can you tell me this? {q}", "{q} Answer in one sentence.",
         "Here is my question: {q}")
"""Wrappers that keep the question whole (so every named entity): they fill up after the rewrites that
move its words (tuneshift._rewrites), which a question they cannot parse does not get."""


def rephrasings(question: str, n: int, proposed: list[str] = ()) -> list[str]:
    """Up to `n` phrasings of `question`: the `proposed` ones (say, a model's) first, then the rewrites',
    then the wrappers';
    each keeps every named entity of the question, none is the question itself or repeats another."""
    out: list[str] = []
    seen = {normalise(question)}
    named = [normalise(e) for e in entities(question)]
    for text in [*proposed, *rewrites(question), *(rule.format(q=question) for rule in RULES)]:
        key = normalise(text)
        if key in seen or not all(name in key for name in named):
            continue
        seen.add(key)
        out.append(text)
        if len(out) == n:
            break
    return out
