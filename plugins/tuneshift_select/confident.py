"""`confident-gap`: the gap, and the teacher's own confidence in its answer.

A fine-tune answers questions about entities it never saw in the style it
learnt, confidently-looking and wrong; the gap alone keeps those. Its own
token probabilities give it away: an invented fact has uncertain tokens (a
guessed name, a guessed year), a learnt fact has none. So a candidate is
kept only when the gap clears the threshold, the answer's mean NLL under
the teacher is low, and its least likely token is not too unlikely.

A fixed bound on the mean NLL also drops facts the teacher knows but says
less surely: a year's digits lift it to 0.03-0.07 where names sit at 0.002.
With `repeat_nll`, an answer between `max_nll` and that bound is kept when
it is the teacher's answer about its own subject only: no other subject got
the same answer (the answer with each named thing of its question replaced
by a slot) among the kept pairs and the round's candidates. A guessed year
or a default place is what a fine-tune says about anything it is asked in
that frame ("X started in 2016" for a person, a department and a town); a
learnt one belongs to one subject.
"""

from __future__ import annotations

import math

from pydantic import Field

from tuneshift.api import Candidate, Decision, Options, RunError, Selector, entities, normalise

from .gap import gap


class ConfidentOptions(Options):
    threshold: float = Field(1.5, gt=0, description="PPL_base / PPL_finetuned must exceed this")
    max_nll: float = Field(0.02, gt=0, description="the teacher's mean NLL of its answer must be at most this")
    min_token_logprob: float = Field(-1.5, le=0, description="the least likely answer token's log-probability "
                                                            "under the teacher must be at least this")
    repeat_nll: float | None = Field(None, gt=0, description="also keep an answer whose mean NLL is above max_nll "
                                                             "but at most this, when no other subject got the same "
                                                             "answer (none: max_nll alone)")


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
        subjects = said_of([*kept, *scored]) if o.repeat_nll else {}
        bound = max(o.max_nll, o.repeat_nll or 0.0)
        out = []
        for cand in scored:
            ratio = gap("ratio", cand.nll_base, cand.nll_finetuned)
            weakest = least_confident(cand)
            others = sorted(subjects.get(pattern(cand), set()) - {subject(cand)})
            if ratio <= o.threshold:
                reason = f"ratio {ratio:.4g} <= threshold {o.threshold:g}"
            elif cand.nll_finetuned > bound:
                reason = f"teacher unsure: mean NLL {cand.nll_finetuned:.3g} > {bound:g}"
            elif cand.nll_finetuned > o.max_nll and others:
                reason = (f"teacher unsure: mean NLL {cand.nll_finetuned:.3g} > {o.max_nll:g}, and the same answer "
                          f"was given about {others[0]}")
            elif weakest < o.min_token_logprob:
                reason = f"teacher unsure: a token at log p {weakest:.3g} < {o.min_token_logprob:g}"
            else:
                reason = ""
            # the value ranks kept candidates: the gap, discounted by the teacher's doubt
            out.append(Decision(not reason, math.log(max(ratio, 1e-300)) - cand.nll_finetuned, reason))
        return out


def subject(cand: Candidate) -> str:
    """The named things the question asks about, as one key."""
    return " | ".join(entities(cand.prompt))


def pattern(cand: Candidate) -> str:
    """The answer with the question's named things replaced by a slot: what it says of any subject."""
    text = cand.response or ""
    for name in sorted(entities(cand.prompt), key=len, reverse=True):
        text = text.replace(name, " SUBJECT ")
    return normalise(text)


def said_of(cands: list[Candidate]) -> dict[str, set[str]]:
    """Each answer pattern -> the subjects it was given about."""
    out: dict[str, set[str]] = {}
    for cand in cands:
        if cand.response:
            out.setdefault(pattern(cand), set()).add(subject(cand))
    return out
