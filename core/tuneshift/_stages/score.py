"""Stage 4: perplexity of the teacher's answer under the fine-tuned model and under its base."""

from __future__ import annotations

import math

from tuneshift._stages.base import RunState
from tuneshift.kinds import Candidate


def run(run: RunState, round_: int, fresh: list[Candidate]) -> list[Candidate]:
    todo = [c for c in fresh if c.fate == "pending"]
    scores = run.score_pairs(run.teacher, [(c.prompt, c.response) for c in todo], stage="score")
    for cand, sc in zip(todo, scores, strict=True):
        cand.nll_finetuned, cand.nll_base = sc.nll_finetuned, sc.nll_base
        cand.ppl_ratio = ppl_ratio(sc.nll_base, sc.nll_finetuned)
        cand.extra.update({"n_tokens": sc.n_tokens, **sc.extra})
    return fresh


def ppl_ratio(nll_base: float, nll_finetuned: float) -> float:
    """PPL_base / PPL_finetuned = exp(nll_base - nll_finetuned), capped to stay finite JSON."""
    return math.exp(min(nll_base - nll_finetuned, 700.0))
