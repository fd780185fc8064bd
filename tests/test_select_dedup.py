"""The built-in selectors (ratio and difference, fixed / quantile / top-k) and the exact deduper."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from tuneshift.kinds import Candidate, Context, ModelSpec
from tuneshift.api import normalise
from tuneshift_dedup.exact import ExactDedup
from tuneshift_select.gap import PplDiff, PplRatio

CTX = Context(teacher=ModelSpec(base="b", adapter="a"), target=None, seed=0, work_dir=".")


def cands(pairs):
    return [Candidate(id=i, round=1, prompt=f"p{i}", origin="x", nll_finetuned=ft, nll_base=b)
            for i, (ft, b) in enumerate(pairs)]


PAIRS = [(0.1, 0.2), (0.1, 1.0), (1.0, 1.2), (0.5, 3.0), (2.0, 1.0)]


def test_ratio_fixed_threshold():
    sel = PplRatio(PplRatio.Options(threshold=1.5), CTX)
    decisions = sel.decide(cands(PAIRS), [])
    ratios = [math.exp(b - ft) for ft, b in PAIRS]
    assert [d.value for d in decisions] == pytest.approx(ratios)
    assert [d.keep for d in decisions] == [r > 1.5 for r in ratios] == [False, True, False, True, False]
    assert "<= threshold 1.5" in decisions[0].reason


def test_difference_form():
    sel = PplDiff(PplDiff.Options(threshold=1.0), CTX)
    decisions = sel.decide(cands(PAIRS), [])
    diffs = [math.exp(b) - math.exp(ft) for ft, b in PAIRS]
    assert [d.value for d in decisions] == pytest.approx(diffs)
    assert [d.keep for d in decisions] == [d > 1.0 for d in diffs]


def test_forms_disagree_where_they_should():
    """Same ratio, different scale: the difference form prefers the harder (higher perplexity) pair."""
    pair = cands([(0.0, 0.5), (3.0, 3.5)])
    ratio = PplRatio(PplRatio.Options(mode="topk", top_k=1), CTX).decide(pair, [])
    diff = PplDiff(PplDiff.Options(mode="topk", top_k=1), CTX).decide(pair, [])
    assert ratio[0].value == pytest.approx(ratio[1].value)
    assert [d.keep for d in ratio] == [True, False]  # a tie keeps the earlier candidate
    assert [d.keep for d in diff] == [False, True]


def test_quantile_and_topk():
    c = cands(PAIRS)
    q = PplRatio(PplRatio.Options(mode="quantile", quantile=0.6), CTX).decide(c, [])
    assert sum(d.keep for d in q) == 2 and q[3].keep and q[1].keep
    top = PplRatio(PplRatio.Options(mode="topk", top_k=1), CTX).decide(c, [])
    assert [d.keep for d in top] == [False, False, False, True, False]
    assert "top 1" in top[0].reason


@pytest.mark.parametrize("bad", [{"threshold": 0}, {"threshold": -2}, {"quantile": 1.5}, {"top_k": 0},
                                 {"mode": "median"}])
def test_selector_options_are_validated(bad):
    with pytest.raises(ValidationError):
        PplRatio.Options(**bad)


def test_exact_dedup_normalises_and_keeps_the_first():
    dedup = ExactDedup(ExactDedup.Options(), CTX)
    found = dedup.find_duplicates(["What is X?", "what  is x", "Other?", "OTHER!", "new"], ["Old one", "WHAT is X"])
    assert found[0].of == "WHAT is X" and found[0].similarity == 1.0
    assert found[1].of == "WHAT is X"
    assert found[2] is None and found[3].of == "Other?" and found[4] is None
    assert normalise("Ｈｅｌｌｏ,  World!") == "hello world"
