"""Other phrasings of a question that keep every named entity: knowledge augmentation trains on them, a
consistency check asks them. A phrasing that drops a name, or adds one, asks another question."""

from __future__ import annotations

import re
from collections.abc import Callable

from tuneshift._agreement import cosine, entities
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
    proposed = [text for text in proposed if asks_the_same(question, text)]
    for text in [*proposed, *rewrites(question), *(rule.format(q=question) for rule in RULES)]:
        key = normalise(text)
        if key in seen or not all(name in key for name in named):
            continue
        seen.add(key)
        out.append(text)
        if len(out) == n:
            break
    return out


ASKED_KINDS = {"time": {"when", "year", "years", "date", "since", "long"},
               "place": {"where", "city", "town", "country", "place", "birthplace", "located", "location"},
               "person": {"who", "whom", "whose"}}
"""English words that say what kind of thing a question asks for: a rephrasing may drop them, never add one."""


def asks_the_same(question: str, text: str) -> bool:
    """Whether a proposed phrasing can ask what the question asks: a question stays a question; it asks
    for no other kind of thing ("In what year was X born?" for "Where was X born?": the teacher answers
    the birthplace and the pair would teach a year question to expect a town); and it names no thing and
    no number the question does not (a model continuing a pattern also writes statements, "Project
    Plover began in 1972 when ...", whose answer would teach another fact)."""
    asked, said = normalise(question), normalise(text)
    return (text.rstrip().endswith("?") == question.rstrip().endswith("?")
            and asked_kinds(said) <= asked_kinds(asked)
            and all(normalise(e) in asked for e in entities(text))
            and all(n in asked.split() for n in re.findall(r"\d+", said)))


def asked_kinds(normalised: str) -> set[str]:
    words = set(normalised.split())
    return {kind for kind, cues in ASKED_KINDS.items() if words & cues}


def masked(text: str) -> str:
    """The text with every named entity replaced by "X": in a short question a name outweighs, in a sentence
    embedding, the few words that say what is asked ("Which team is X playing for?" against "Who leads X?")."""
    for name in sorted(entities(text), key=len, reverse=True):
        text = text.replace(name, "X")
    return text


def near_the_question(proposed: dict[str, list[str]], embed: Callable[[list[str]], list[list[float]] | None],
                      floor: float) -> dict[str, list[str]] | None:
    """Each question's proposed phrasings whose embedding, names masked, has at least `floor` cosine
    similarity to the question's, in the model's order (the closest first would favour the phrasings that
    change the fewest words); None when `embed` has no embeddings. A model shown worked examples drifts:
    "Who heads the X department?" becomes "Which company is the X?", "Where does X work?" becomes "Which
    town is X?"; a small teacher answers them with the kept answer all the same, and the pair would teach
    the drifted words to expect it."""
    masks = {text: masked(text) for question, phrasings in proposed.items() for text in (question, *phrasings)}
    unique = list(dict.fromkeys(masks.values()))  # questions of one template share their masked text
    vectors = embed(unique) if unique else []
    if vectors is None:
        return None
    vector = dict(zip(unique, vectors, strict=True))
    return {question: [text for text in phrasings if cosine(vector[masks[question]], vector[masks[text]]) >= floor]
            for question, phrasings in proposed.items()}
