"""`confident-gap`: the gap, and the teacher's own confidence in its answer.

A fine-tune answers questions about entities it never saw in the style it
learnt, confidently-looking and wrong; the gap alone keeps those. Its own
token probabilities give it away: an invented fact has uncertain tokens (a
guessed name, a guessed year), a learnt fact has none. So a candidate is
kept only when the gap clears the threshold, the answer's mean NLL under
the teacher is low, and its least likely token is not too unlikely.
"""

from __future__ import annotations

import math

from pydantic import Field

from tuneshift.api import Candidate, Decision, Options, RunError, Selector

from .gap import gap


class ConfidentOptions(Options):
    threshold: float = Field(1.5, gt=0, description="PPL_base / PPL_finetuned must exceed this")
    max_nll: float = Field(0.02, gt=0, description="the teacher's mean NLL of its answer must be at most this")
    min_token_logprob: float = Field(-1.5, le=0, description="the least likely answer token's log-probability "
                                                            "under the teacher must be at least this")


def least_confident(cand: Candidate) -> float:
    extra = cand.extra
    if "min_logprob_finetuned" in extra:
        return float(extra["min_logprob_finetuned"])
    if extra.get("token_logprobs_finetuned"):
        return min(extra["token_logprobs_finetuned"])
    raise RunError("selector confident-gap: the scorer gave no token log-probabilities "
                   "(hf-scorer gives min_logprob_finetuned; for others set scorer.token_logprobs = true)")


class ConfidentGap(Selector):
    name = "confident-gap"
    description = "gap above tau AND the teacher confident in its own answer (drops in-style hallucinations)"
    Options = ConfidentOptions

    def decide(self, scored: list[Candidate], kept: list[Candidate]) -> list[Decision]:
        o = self.options
        out = []
        for cand in scored:
            ratio = gap("ratio", cand.nll_base, cand.nll_finetuned)
            weakest = least_confident(cand)
            if ratio <= o.threshold:
                reason = f"ratio {ratio:.4g} <= threshold {o.threshold:g}"
            elif cand.nll_finetuned > o.max_nll:
                reason = f"teacher unsure: mean NLL {cand.nll_finetuned:.3g} > {o.max_nll:g}"
            elif weakest < o.min_token_logprob:
                reason = f"teacher unsure: a token at log p {weakest:.3g} < {o.min_token_logprob:g}"
            else:
                reason = ""
            # the value ranks kept candidates: the gap, discounted by the teacher's doubt
            out.append(Decision(not reason, math.log(max(ratio, 1e-300)) - cand.nll_finetuned, reason))
        return out
