"""Measures for data-free verification: answer agreement, entities, clusters, rank correlation.

The text measures are plain Python; the numerics (cosine, k-means, ranks, Spearman) come from numpy,
faiss and scipy rather than being written by hand. Those are imported inside the functions: this
module is reachable from the CLI, and `tuneshift --help` must not pay for them.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from typing import Sequence

from tuneshift._text import normalise

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
    """Cosine similarity of two vectors of one length; 0.0 when either is all zeros."""
    import numpy as np

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(np.dot(x, y)) / norm if norm else 0.0


def kmeans(vectors: Sequence[Sequence[float]], k: int, seed: int, iterations: int = 25) -> list[int]:
    """Cluster index of each vector: k-means on cosine similarity, farthest-point start, deterministic.

    The start is chosen here (a seeded random vector, then each time the vector least similar to every
    centre so far), so that the regions do not depend on faiss's own sampling; faiss's spherical k-means
    then runs the Lloyd iterations (assignment by cosine, centres the members' mean direction). The
    last assignment is against the centres after `iterations - 1` updates, as before."""
    n = len(vectors)
    if n == 0:
        return []
    k = max(1, min(k, n))
    if k == 1 or iterations < 1:
        return [0] * n
    import numpy as np

    def unit(m):  # rows scaled to length 1; all-zero rows stay zero (cosine 0 with everything)
        lengths = np.linalg.norm(m, axis=1, keepdims=True)
        return np.divide(m, lengths, out=np.zeros_like(m), where=lengths > 0)

    x = np.asarray(vectors, dtype=np.float64).reshape(n, -1)
    u = unit(x)
    chosen = [random.Random(seed).randrange(n)]
    nearest = u @ u[chosen[0]]  # each vector's highest similarity to a centre so far
    while len(chosen) < k:
        chosen.append(int(np.argmin(nearest)))  # first of the least similar, as min() picked
        nearest = np.maximum(nearest, u @ u[chosen[-1]])
    centres = x[chosen]
    if k < n:  # with k == n faiss would copy the vectors as centres; the start is the answer then
        import faiss

        km = faiss.Kmeans(x.shape[1], k, niter=iterations - 1, spherical=True, seed=seed % 2**31,
                          min_points_per_centroid=1, max_points_per_centroid=n, verbose=False)
        km.train(np.ascontiguousarray(x, dtype=np.float32),
                 init_centroids=np.ascontiguousarray(centres, dtype=np.float32))
        centres = km.centroids.astype(np.float64)
    return [int(j) for j in np.argmax(u @ unit(centres).T, axis=1)]  # first best centre on ties


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
    from scipy.stats import rankdata

    return [float(r) for r in rankdata(values, method="average")]


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson on tie-averaged ranks); None when the lengths differ, with
    fewer than 2 points, or when either side is constant (no correlation is defined, and reports are
    strict JSON, which has no NaN)."""
    if len(x) != len(y) or len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(x, y).statistic)
    return None if math.isnan(rho) else rho


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
