"""The numerics of verification (cosine, k-means, ranks, Spearman) give the same results as the
pure-Python versions they replaced (issue 16 part 6), on seeded random inputs and the edge cases."""

from __future__ import annotations

import json
import math
import random
from typing import Sequence

import pytest

from tuneshift import _agreement as agree

# --- REFERENCE ONLY: the pure-Python implementations as they were before numpy/faiss/scipy ----------
# Copied verbatim from tuneshift/agreement.py (commit 8b55274); used by these tests alone.


def ref_cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def ref_kmeans(vectors: list[list[float]], k: int, seed: int, iterations: int = 25) -> list[int]:
    if not vectors:
        return []
    k = max(1, min(k, len(vectors)))
    rng = random.Random(seed)
    centres = [vectors[rng.randrange(len(vectors))]]
    while len(centres) < k:
        centres.append(min(vectors, key=lambda v: max(ref_cosine(v, c) for c in centres)))
    labels = [0] * len(vectors)
    for step in range(iterations):
        new = [max(range(len(centres)), key=lambda j: ref_cosine(v, centres[j])) for v in vectors]
        if new == labels and step > 0:
            break
        labels = new
        for j in range(len(centres)):
            members = [v for v, label in zip(vectors, labels) if label == j]
            if members:
                centres[j] = [sum(col) / len(members) for col in zip(*members)]
    return labels


def ref_ranks(values: Sequence[float]) -> list[float]:
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


def ref_spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) != len(y) or len(x) < 2:
        return None
    rx, ry = ref_ranks(x), ref_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return cov / var if var else None

# --- END OF REFERENCE --------------------------------------------------------------------------------


def partition(labels: list[int]) -> set[frozenset[int]]:
    """The groups of indices, whatever each group's label number."""
    groups: dict[int, set[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, set()).add(i)
    return {frozenset(g) for g in groups.values()}


def separated(rng: random.Random, k: int, per: int, dim: int, noise: float = 0.05) -> list[list[float]]:
    """`k` tight groups of `per` vectors around random directions, shuffled."""
    centres = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(k)]
    out = [[c + rng.gauss(0, noise) for c in centre] for centre in centres for _ in range(per)]
    rng.shuffle(out)
    return out


# --- cosine ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_cosine_matches_the_reference(seed):
    rng = random.Random(seed)
    for dim in (1, 2, 7, 64, 384):
        a = [rng.uniform(-3, 3) for _ in range(dim)]
        b = [rng.uniform(-3, 3) for _ in range(dim)]
        got = agree.cosine(a, b)
        assert type(got) is float
        assert got == pytest.approx(ref_cosine(a, b), abs=1e-9)
        assert agree.cosine(a, a) == pytest.approx(1.0, abs=1e-9)


def test_cosine_of_a_zero_or_empty_vector_is_zero():
    assert agree.cosine([0.0, 0.0], [1.0, 2.0]) == ref_cosine([0.0, 0.0], [1.0, 2.0]) == 0.0
    assert agree.cosine([], []) == ref_cosine([], []) == 0.0
    assert type(agree.cosine([0, 0], [0, 0])) is float


# --- ranks and Spearman ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_ranks_and_spearman_match_the_reference_with_ties(seed):
    rng = random.Random(seed)
    for n in (2, 3, 5, 12, 40):
        x = [rng.randint(0, 4) for _ in range(n)]  # few distinct values: many ties
        y = [rng.choice([rng.random(), 0.5]) for _ in range(n)]  # ties on 0.5 only
        assert agree.ranks(x) == ref_ranks(x)
        assert agree.ranks(y) == ref_ranks(y)
        assert all(type(r) is float for r in agree.ranks(x))
        want, got = ref_spearman(x, y), agree.spearman(x, y)
        if want is None:
            assert got is None
        else:
            assert type(got) is float
            assert got == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("x, y", [
    ([], []), ([1.0], [2.0]),  # fewer than 2 points
    ([1, 2, 3], [1, 2]),  # lengths differ
    ([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [0.5, 0.5, 0.5]), ([2, 2], [2, 2]),  # a constant side
])
def test_spearman_is_none_where_it_was(x, y):
    assert ref_spearman(x, y) is None
    assert agree.spearman(x, y) is None


def test_spearman_is_plain_json():
    rho = agree.spearman([0.1, 0.4, 0.2, 0.9], [1, 3, 2, 5])
    assert json.loads(json.dumps({"rho": rho})) == {"rho": 1.0}
    assert agree.ranks([]) == ref_ranks([]) == []


# --- k-means -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_kmeans_finds_the_same_partition_on_separated_clusters(seed):
    rng = random.Random(1000 + seed)
    k = rng.randint(2, 6)
    vectors = separated(rng, k, per=rng.randint(3, 12), dim=rng.choice([4, 16, 64]))
    labels = agree.kmeans(vectors, k, seed)
    assert type(labels) is list and all(type(label) is int for label in labels)
    assert partition(labels) == partition(ref_kmeans(vectors, k, seed))
    assert len(partition(labels)) == k


@pytest.mark.parametrize("seed", [0, 7, 2**32 + 5, 2**64 - 1])  # run.seed may be any 64-bit value
def test_kmeans_is_deterministic_for_a_seed(seed):
    vectors = separated(random.Random(3), 4, per=6, dim=8, noise=0.4)
    first = agree.kmeans(vectors, 4, seed)
    assert all(agree.kmeans(vectors, 4, seed) == first for _ in range(3))
    assert partition(first) == partition(ref_kmeans(vectors, 4, seed))


@pytest.mark.parametrize("extra", [0, 1, 5])
def test_kmeans_with_k_at_least_the_number_of_vectors(extra):
    rng = random.Random(extra)
    vectors = [[rng.gauss(0, 1) for _ in range(5)] for _ in range(6)]
    labels = agree.kmeans(vectors, len(vectors) + extra, seed=1)
    assert partition(labels) == partition(ref_kmeans(vectors, len(vectors) + extra, seed=1))
    assert len(set(labels)) == len(vectors)  # every vector alone


def test_kmeans_with_k_at_least_the_number_of_vectors_and_repeats():
    vectors = [[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.5]]  # two point the same way
    for k in (4, 5, 9):
        assert partition(agree.kmeans(vectors, k, 0)) == partition(ref_kmeans(vectors, k, 0))


@pytest.mark.parametrize("k", [1, 0, -3])
def test_kmeans_with_one_cluster(k):
    vectors = separated(random.Random(5), 3, per=4, dim=6)
    assert agree.kmeans(vectors, k, seed=9) == ref_kmeans(vectors, k, seed=9) == [0] * len(vectors)


def test_kmeans_edge_inputs():
    assert agree.kmeans([], 3, 0) == ref_kmeans([], 3, 0) == []
    assert agree.kmeans([[0.3, 0.4]], 3, 0) == ref_kmeans([[0.3, 0.4]], 3, 0) == [0]
    same = [[0.5, 0.5]] * 6  # nothing to tell apart: one group, as before
    assert partition(agree.kmeans(same, 3, 2)) == partition(ref_kmeans(same, 3, 2)) == {frozenset(range(6))}
