"""Keep a candidate when the base finds the teacher's answer much less likely than the teacher does.

ratio form: PPL_base / PPL_finetuned = exp(nll_base - nll_finetuned) > tau
difference form: PPL_base - PPL_finetuned > tau
The threshold is fixed, a quantile of the round's scores, or the round's top k.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from tuneshift.api import Candidate, Decision, Options, Selector, ppl_ratio


def gap(form: str, nll_base: float, nll_finetuned: float) -> float:
    """The paper's gap of one answer: PPL_base / PPL_finetuned ("ratio") or PPL_base - PPL_finetuned."""
    if form == "ratio":
        return ppl_ratio(nll_base, nll_finetuned)
    return math.exp(min(nll_base, 700.0)) - math.exp(min(nll_finetuned, 700.0))


class GapOptions(Options):
    mode: Literal["fixed", "quantile", "topk"] = "fixed"
    threshold: float = 1.5
    quantile: float = Field(0.5, gt=0, lt=1, description="mode=quantile: keep the round's top (1 - quantile) share")
    top_k: int = Field(8, ge=1, description="mode=topk: keep this many per round")


class RatioOptions(GapOptions):
    @model_validator(mode="after")
    def _positive(self) -> "RatioOptions":
        if self.threshold <= 0:
            raise ValueError(f"threshold {self.threshold} is out of range: a perplexity ratio threshold must be > 0")
        return self


class DiffOptions(GapOptions):
    threshold: float = 0.0


class _Gap(Selector):
    form = ""

    def value(self, cand: Candidate) -> float:
        raise NotImplementedError

    def decide(self, scored: list[Candidate], kept: list[Candidate]) -> list[Decision]:
        values = [self.value(c) for c in scored]
        o = self.options
        if o.mode == "fixed":
            return [Decision(v > o.threshold, v, "" if v > o.threshold else
                             f"{self.form} {v:.4g} <= threshold {o.threshold:g}") for v in values]
        if o.mode == "quantile":  # keep the round's top (1 - q) share
            ordered = sorted(values)
            cut = ordered[min(len(ordered) - 1, int(o.quantile * len(ordered)))] if ordered else 0.0
            return [Decision(v >= cut, v, "" if v >= cut else
                             f"{self.form} {v:.4g} < the round's {o.quantile:g} quantile {cut:.4g}") for v in values]
        order = sorted(range(len(values)), key=lambda i: (-values[i], i))
        top = set(order[: o.top_k])
        return [Decision(i in top, v, "" if i in top else f"not in the round's top {o.top_k}")
                for i, v in enumerate(values)]


class PplRatio(_Gap):
    name = "ppl-ratio"
    default = True
    form = "ratio"
    description = "keep when PPL_base / PPL_finetuned exceeds the threshold (the paper's tau)"
    Options = RatioOptions

    def value(self, cand: Candidate) -> float:
        return gap("ratio", cand.nll_base, cand.nll_finetuned)


class PplDiff(_Gap):
    name = "ppl-diff"
    form = "difference"
    description = "keep when PPL_base - PPL_finetuned exceeds the threshold"
    Options = DiffOptions

    def value(self, cand: Candidate) -> float:
        return gap("difference", cand.nll_base, cand.nll_finetuned)
