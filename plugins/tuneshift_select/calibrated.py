"""`calibrated`: a threshold set by a null distribution instead of a guessed tau.

A fine-tune shifts style as well as knowledge, so the teacher's answers to
questions it was never trained on (the off-domain reference set) also show
perplexity gaps. Their gaps are the null: keeping only what exceeds their
q-quantile bounds the share of style-only gaps that get through, and that
share is reported as the estimated false-keep rate.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from tuneshift.api import Candidate, Decision, Options, RunError, Sampling, Selector

from .gap import gap
from .reference import reference_prompts


def quantile(values: list[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    low = math.floor(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


class CalibratedOptions(Options):
    form: Literal["ratio", "difference"] = "ratio"
    quantile: float = Field(0.99, gt=0, lt=1, description="keep gaps above this quantile of the null")
    reference: str | None = Field(None, description="off-domain prompts (JSONL or text); default built in")
    max_new_tokens: int = Field(64, ge=1, description="length of the teacher's reference answers")


class Calibrated(Selector):
    name = "calibrated"
    description = "keep gaps above the q-quantile of the gaps on off-domain prompts (estimated false-keep rate)"
    Options = CalibratedOptions

    _null: list[float] | None = None

    def null(self) -> list[float]:
        """The reference set's gaps: the teacher answers each prompt, the run's scorer scores it (both cached)."""
        if self._null is None:
            ctx = self.context
            if ctx.generate is None or ctx.score is None:
                raise RunError(f"selector {self.name}: needs the run's answerer and scorer (run it inside tuneshift run)")
            prompts = reference_prompts(self.options.reference)
            answers = ctx.generate(ctx.teacher, prompts, Sampling(max_new_tokens=self.options.max_new_tokens,
                                                                  seed=ctx.seed))
            pairs = [(p, a.text) for p, a in zip(prompts, answers) if a.text]
            if len(pairs) < 10:
                raise RunError(f"selector {self.name}: the teacher answered {len(pairs)} reference prompts; need 10")
            scores = ctx.score(ctx.teacher, pairs)
            self._null = [gap(self.options.form, s.nll_base, s.nll_finetuned) for s in scores]
        return self._null

    def threshold(self) -> float:
        return quantile(self.null(), self.options.quantile)

    def decide(self, scored: list[Candidate], kept: list[Candidate]) -> list[Decision]:
        cut, q = self.threshold(), self.options.quantile
        out = []
        for cand in scored:
            value = gap(self.options.form, cand.nll_base, cand.nll_finetuned)
            keep = value > cut
            out.append(Decision(keep, value, "" if keep else
                                f"{self.options.form} {value:.4g} <= {cut:.4g}, the off-domain {q:g} quantile"))
        return out

    def summary(self) -> dict[str, Any]:
        if self._null is None:
            return {}
        cut = self.threshold()
        return {"calibrated_threshold": cut, "reference_size": len(self._null),
                "estimated_false_keep_rate": sum(v > cut for v in self._null) / len(self._null),
                "reference_median": quantile(self._null, 0.5)}
