"""After the rounds: knowledge augmentation. Every kept fact is asked again in other phrasings.

A fact seen in one phrasing is answered on held-out phrasings about a tenth of
the time; in several, nearly always (Physics of Language Models 3.1). So each
kept question gets `augment.rephrasings` phrasings (a model's, when
`augment.model` is set, else or besides rule-based rewrites that keep every
named entity), the teacher answers each, and an answer that holds the kept
answer's content words (`augment.agreement`) is a consistent phrasing of the
same fact and becomes a training pair. An answer that changes across
phrasings is a sign of invention; the fact's consistency (agreeing / asked) is
recorded on its candidate. Pairs of one fact share a `fact` id, so the
trainer never puts two of them in one batch; each fact adds at most
`rephrasings` pairs, so none dominates.
"""

from __future__ import annotations

from typing import Any

from tuneshift._agreement import content_agreement
from tuneshift._fewshot import parse_prompts
from tuneshift._hub import local_model
from tuneshift._phrasing import rephrasings
from tuneshift._stages.base import RunState
from tuneshift.kinds import ModelSpec, Sampling

REQUEST = ("Rewrite this question in {n} different ways. Keep every name exactly as written. "
           "Reply with a JSON list of strings only.\nQuestion: {q}")


def run(run: RunState) -> dict[str, Any] | None:
    """The stage: rephrase, answer, compare; returns report.json's `augmentation` section."""
    cfg = run.cfg.augment
    run.augmented = []
    if not cfg.enabled:
        return None
    kept = [c for c in run.candidates if c.kept]
    phrasings = {c.id: rephrase(run, c.prompt, cfg.rephrasings, cfg.model) for c in kept}
    asked = [(c, p) for c in kept for p in phrasings[c.id]]
    answers = run.generate(run.teacher, [p for _, p in asked], run.greedy, stage="augment")
    agreeing: dict[int, int] = {c.id: 0 for c in kept}
    for (cand, prompt), answer in zip(asked, answers, strict=True):
        text = (answer.text or "").strip()
        if answer.error is None and text and content_agreement(cand.response or "", text, prompt) >= cfg.agreement:
            agreeing[cand.id] += 1
            run.augmented.append({"prompt": prompt, "response": text, "fact": cand.id, "origin": "augment"})
    for cand in kept:
        n = len(phrasings[cand.id])
        cand.extra["consistency"] = round(agreeing[cand.id] / n, 4) if n else None
        cand.extra["rephrasings_asked"] = n
        if agreeing[cand.id]:
            cand.extra["fact"] = cand.id  # the kept pair and its phrasings: one fact, never one batch
    scores = [c.extra["consistency"] for c in kept if c.extra["consistency"] is not None]
    return {"facts": len(kept), "asked": len(asked), "consistent": len(run.augmented),
            "pairs_added": len(run.augmented), "mean_consistency": round(sum(scores) / len(scores), 4) if scores else None,
            "fully_consistent_facts": sum(s == 1.0 for s in scores), "inconsistent_facts": sum(s == 0.0 for s in scores),
            "paraphraser": cfg.model or "rules"}


def rephrase(run: RunState, question: str, n: int, model: str | None) -> list[str]:
    """`n` other phrasings of the question that keep its named entities: the model's first (when asked),
    then the rules'; never the question itself, never one twice."""
    return rephrasings(question, n, model_phrasings(run, question, n, model) if model else [])


def model_phrasings(run: RunState, question: str, n: int, model: str) -> list[str]:
    """Rephrasings by a model through the run's cached answerer: the teacher's base, the teacher, or a path."""
    spec = {"teacher": run.teacher, "base": run.teacher.base_only()
            }.get(model) or ModelSpec(base=local_model(model, "config: augment.model ="))
    sampling = Sampling(max_new_tokens=48 * n, seed=run.cfg.run.seed)
    [answer] = run.generate(spec, [REQUEST.format(n=n, q=question)], sampling, stage="augment")
    return parse_prompts(answer.text or "")[: 2 * n]
