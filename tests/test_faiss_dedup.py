"""st-faiss: near-duplicates found through real MiniLM embeddings and FAISS, originals kept, resumable."""

from __future__ import annotations

import pytest
from tuneshift_faiss.dedup import StFaissDedup, rouge_l_f1

from tuneshift.kinds import Context, ModelSpec

ORIGINALS = ["What is the capital of Zorbia?", "Who founded Zorbia?", "Name the tallest mountain in Zorbia.",
             "Which river flows through Velmora?", "How do I bake sourdough bread at home?"]
PLANTED = {"What's the capital city of Zorbia?": ORIGINALS[0], "Who was Zorbia founded by?": ORIGINALS[1],
           "what is the capital of zorbia": ORIGINALS[0]}
DISTINCT = ["Which currency is used in Zorbia?", "Write a poem about the sea."]


def make(tmp_path, **options) -> StFaissDedup:
    ctx = Context(teacher=ModelSpec(base="b", adapter="a"), target=None, seed=0, work_dir=str(tmp_path))
    return StFaissDedup(StFaissDedup.Options(**options), ctx)


def test_finds_planted_near_duplicates_and_keeps_originals(tmp_path):
    dedup = make(tmp_path)
    first = dedup.find_duplicates(ORIGINALS, [])
    assert first == [None] * len(ORIGINALS)  # distinct originals all stay
    new = list(PLANTED) + DISTINCT
    found = dedup.find_duplicates(new, ORIGINALS)
    for text, dup in zip(new, found):
        if text in PLANTED:
            assert dup is not None and dup.of == PLANTED[text], text
            assert 0.95 <= dup.similarity <= 1.0
        else:
            assert dup is None, text
    assert found[2].similarity == 1.0  # exact after normalisation: caught by the hash


def test_within_a_batch_the_first_of_a_group_is_kept(tmp_path):
    found = make(tmp_path).find_duplicates(["Who founded Zorbia?", "Who was Zorbia founded by?"], [])
    assert found[0] is None and found[1].of == "Who founded Zorbia?"


def test_threshold_is_configurable(tmp_path):
    strict = make(tmp_path, threshold=0.999).find_duplicates(["What's the capital city of Zorbia?"], ORIGINALS)
    loose = make(tmp_path, threshold=0.7).find_duplicates(["Which is the highest mountain of Zorbia?"], ORIGINALS)
    assert strict == [None]
    assert loose[0] is not None and loose[0].of == "Name the tallest mountain in Zorbia."


def test_embeddings_are_cached_on_disk(tmp_path):
    make(tmp_path).find_duplicates(DISTINCT, ORIGINALS)
    again = make(tmp_path)  # a new process after a resume: same work dir
    found = again.find_duplicates(DISTINCT, ORIGINALS)
    assert found == [None, None]
    assert again._encoder is None  # everything came from the store, no model was loaded


def test_rouge_l_criterion(tmp_path):
    assert rouge_l_f1("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert rouge_l_f1("a b c d", "a x c y") == pytest.approx(0.5)
    dedup = make(tmp_path, threshold=1.0, rouge_l=0.7)
    found = dedup.find_duplicates(["Tell me who founded the country of Zorbia please"],
                                  ["Tell me who founded the country of Zorbia"])
    assert found[0] is not None and found[0].similarity >= 0.7


@pytest.mark.parametrize("exact_limit", [10_000, 0])  # flat index, and IVF forced on a small set
def test_search_matches_the_naive_loop(exact_limit):
    import numpy as np
    from tuneshift_faiss.search import build_index, first_of_group, naive_first_of_group, pairs_above

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(300, 64)).astype("float32")
    pick = rng.integers(0, 300, 1500)
    vectors = centres[pick] + rng.normal(scale=0.12, size=(1500, 64)).astype("float32")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    threshold = 0.95
    index = build_index(vectors, exact_limit)
    fast = first_of_group(pairs_above(index, vectors, threshold), pairs_above(None, vectors, threshold),
                          [False] * len(vectors))
    slow = naive_first_of_group(vectors, threshold)
    assert [None if f is None else f[1] for f in fast] == [None if s is None else s[0] for s in slow]
    assert sum(f is not None for f in fast) > 100  # the planted groups produced duplicates


def test_embeddings_cluster_prompts_by_topic(tmp_path):
    """Deduper.embed gives the verify stage unit vectors whose clusters follow the topic."""
    from tuneshift._agreement import kmeans

    texts = ["What is the capital of Zorbia?", "Who founded Zorbia?", "Which currency is used in Zorbia?",
             "How do I bake sourdough bread at home?", "What flour is best for baking bread?"]
    vectors = make(tmp_path).embed(texts)
    assert len(vectors) == 5 and all(abs(sum(x * x for x in v) - 1) < 1e-4 for v in vectors)
    labels = kmeans(vectors, 2, seed=0)
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4]
