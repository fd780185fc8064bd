"""`token-excess` (TiTok-style): per-token log p_finetuned - log p_base.

A sample's value is its mean token excess (the log of the perplexity ratio);
with `token_share` < 1 the kept sample also carries the character spans of
its top tokens by excess, and the trainer puts its loss on those only: the
tokens the fine-tune knows and the base does not, not the shared phrasing.
"""

from __future__ import annotations

from pydantic import Field

from tuneshift.api import Candidate, Decision, RunError

from .gap import GapOptions, _Gap


class ExcessOptions(GapOptions):
    threshold: float = Field(0.405, description="mode=fixed: mean token excess in nats (log 1.5 = 0.405)")
    token_share: float = Field(1.0, gt=0, le=1, description="train on this share of each answer's tokens, "
                                                           "highest excess first (1 = all)")


def excess(cand: Candidate) -> list[float]:
    ft, base = cand.extra.get("token_logprobs_finetuned"), cand.extra.get("token_logprobs_base")
    if ft is None or base is None or len(ft) != len(base):
        raise RunError("selector token-excess: needs per-token log-probabilities of both models on the same tokens "
                       "(set scorer.token_logprobs = true)")
    return [a - b for a, b in zip(ft, base)]


def top_spans(cand: Candidate, share: float) -> list[list[int]]:
    """Character spans of the answer's top `share` tokens by excess (at least one token)."""
    spans = cand.extra.get("token_spans")
    values = excess(cand)
    if not spans or len(spans) != len(values):
        raise RunError("selector token-excess: token_share < 1 needs the scorer's token_spans (hf-scorer with "
                       "token_logprobs = true and a fast tokenizer)")
    k = max(1, round(share * len(values)))
    best = sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]
    return [list(spans[i]) for i in sorted(best)]


class TokenExcess(_Gap):
    name = "token-excess"
    form = "mean token excess"
    description = "TiTok-style: select by mean per-token excess, optionally train on the top tokens only"
    Options = ExcessOptions

    def value(self, cand: Candidate) -> float:
        values = excess(cand)
        return sum(values) / len(values)

    def decide(self, scored: list[Candidate], kept: list[Candidate]) -> list[Decision]:
        decisions = super().decide(scored, kept)
        if self.options.token_share >= 1:
            return decisions
        return [Decision(d.keep, d.value, d.reason, {"train_spans": top_spans(c, self.options.token_share)})
                if d.keep else d for d, c in zip(decisions, scored)]
