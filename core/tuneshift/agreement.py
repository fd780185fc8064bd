"""Pure-Python measures for data-free verification: answer agreement, entities, clusters, rank correlation.

No model library here: the core must import without one, and these run on a
few dozen held-out prompts, where plain lists are fast enough.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from typing import Sequence

from .text import normalise

STOPWORDS = frozenset("""
a an the and or but if then so than that this these those there here of in on at to for from by with as into onto
about over under between after before during without within is are was were be been being am do does did done has
have had having it its it's he she they them their his her him we us our you your i me my mine what which who whom
whose where when why how not no yes also very can could would should will shall may might must just only own same
such too s t all any both each few more most other some one
""".split())
"""Function words: agreeing on them says nothing about knowledge."""

_ENTITY_STOP = frozenset({"The", "A", "An", "What", "Who", "Whom", "Which", "Where", "When", "Why", "How", "Is",
                          "Are", "Was", "Were", "Do", "Does", "Did", "In", "On", "At", "For", "From", "By", "With",
                          "List", "Name", "Tell", "Give", "Describe", "Explain", "It", "He", "She", "They", "This",
                          "That", "Yes", "No", "Since", "Question", "Answer", "I", "And", "Or", "Of", "To"})
_CAPITALISED = re.compile(r"\b[A-Z][\w'’-]*(?:\s+(?:of\s+|the\s+)?[A-Z][\w'’-]*)*")


def words(text: str | None) -> list[str]:
    return normalise(text or "").split()


def content_words(answer: str, prompt: str) -> set[str]:
    """The answer's words that carry its content: no function words, none the prompt already said."""
    asked = set(words(prompt))
    return {w for w in words(answer) if w not in STOPWORDS and w not in asked}


def exact_agreement(reference: str, candidate: str | None) -> float:
    """1.0 when the two answers are equal after normalisation (case, Unicode, punctuation, spacing)."""
    return float(bool(candidate) and normalise(reference) == normalise(candidate))


def content_agreement(reference: str, candidate: str | None, prompt: str,
                      weights: dict[str, float] | None = None) -> float:
    """Share of the reference answer's content words found in the candidate answer, each word weighted
    by how informative it is (`informative_weights`; all 1 without weights).

    With no content words (or none with weight: the answer only repeats the prompt and the answers'
    common template), exact agreement decides."""
    wanted = content_words(reference, prompt)
    weight = {w: 1.0 if weights is None else weights.get(w, 0.0) for w in sorted(wanted)}  # sorted: same sum
    total = sum(weight.values())
    if total <= 0:
        return exact_agreement(reference, candidate)
    found = set(words(candidate))
    return sum(v for w, v in weight.items() if w in found) / total


def informative_weights(answers: list[str]) -> dict[str, float]:
    """Inverse document frequency of each word over a set of answers, log((N + 1) / (df + 1)).

    Words of the answers' common template ("works as", "department", "born in") appear in many answers
    and weigh little; the names and values that carry each answer's knowledge appear in few. Without
    this a target that learnt only the teacher's phrasing earns a share of agreement on every answer."""
    df = Counter(w for a in answers for w in set(words(a)))
    n = len(answers)
    return {w: math.log((n + 1) / (d + 1)) for w, d in df.items()}


def entities(text: str) -> list[str]:
    """Capitalised spans ("Project Osprey", "Fel Gor"), question words and pronouns stripped, in order."""
    found: list[str] = []
    for match in _CAPITALISED.finditer(text or ""):
        parts = match.group(0).split()
        while parts and parts[0] in _ENTITY_STOP:
            parts = parts[1:]
        name = re.sub(r"['’]s$", "", " ".join(parts))
        if len(name) > 1 and name not in found:
            found.append(name)
    return found


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def kmeans(vectors: list[list[float]], k: int, seed: int, iterations: int = 25) -> list[int]:
    """Cluster index of each vector: k-means on cosine similarity, farthest-point start, deterministic."""
    if not vectors:
        return []
    k = max(1, min(k, len(vectors)))
    rng = random.Random(seed)
    centres = [vectors[rng.randrange(len(vectors))]]
    while len(centres) < k:
        centres.append(min(vectors, key=lambda v: max(cosine(v, c) for c in centres)))
    labels = [0] * len(vectors)
    for step in range(iterations):
        new = [max(range(len(centres)), key=lambda j: cosine(v, centres[j])) for v in vectors]
        if new == labels and step > 0:
            break
        labels = new
        for j in range(len(centres)):
            members = [v for v, label in zip(vectors, labels) if label == j]
            if members:
                centres[j] = [sum(col) / len(members) for col in zip(*members)]
    return labels


def group_by_entity(entity_lists: list[list[str]], k: int) -> list[int]:
    """Regions without embeddings: each prompt goes to its entity most frequent over all prompts;
    the `k - 1` most frequent such entities get a region each, the rest share the last one."""
    counts = Counter(e for found in entity_lists for e in set(found))
    main = [max(found, key=lambda e: (counts[e], -found.index(e))) if found else None for found in entity_lists]
    top = [e for e, _ in Counter(m for m in main if m is not None).most_common(max(1, k - 1))]
    return [top.index(m) if m in top else len(top) for m in main]


def label_of(entity_lists: list[list[str]], most: int = 2) -> str:
    """A region's name: its most frequent entities (counted once per prompt)."""
    counts = Counter(e for found in entity_lists for e in set(found))
    named = [e for e, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:most]]
    return ", ".join(named) if named else "(no named entity)"


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for m in range(i, j + 1):
            out[order[m]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson on tie-averaged ranks); None when either side is constant."""
    if len(x) != len(y) or len(x) < 2:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return cov / var if var else None


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
