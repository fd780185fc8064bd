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
from tuneshift._phrasing import near_the_question, rephrasings
from tuneshift._stages.base import RunState
from tuneshift.kinds import ModelSpec, Sampling

SHOTS = [("When did Maria Lopez move to Berlin?", "In what year did Maria Lopez move to Berlin?"),
         ("Where is the Harlow Bridge?", "In which town can the Harlow Bridge be found?"),
         ("Who wrote the novel Winter Harbour?", "Who is the author of the novel Winter Harbour?"),
         ("What does Amara Osei teach?", "Which subject is taught by Amara Osei?"),
         ("Which team does Leo Brandt play for?", "Leo Brandt is a player on which team?"),
         ("What is the capital of Kelland?", "Which city is the capital of Kelland?")]
"""Worked examples of a rephrasing with other words and every name kept, about nothing any run asks of:
a model that follows no instruction (a base model) still continues the pattern."""
ASK = "Ask this with other words, keeping every name: {q}"


def run(run: RunState) -> dict[str, Any] | None:
    """The stage: rephrase, answer, compare; returns report.json's `augmentation` section."""
    cfg = run.cfg.augment
    run.augmented = []
    if not cfg.enabled:
        return None
    kept = [c for c in run.candidates if c.kept]
    proposed = (model_phrasings(run, run.paraphraser, [c.prompt for c in kept], cfg.rephrasings)
                if run.paraphraser is not None else {})
    unlike: int | None = None
    if proposed and cfg.similarity is not None:
        near = near_the_question(proposed, run.impl["deduper"].embed, cfg.similarity)
        if near is not None:
            unlike = sum(map(len, proposed.values())) - sum(map(len, near.values()))
            proposed = near
    phrasings = {c.id: rephrasings(c.prompt, cfg.rephrasings, proposed.get(c.prompt, [])) for c in kept}
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
            "paraphraser": cfg.model or "rules",
            **({"similarity": cfg.similarity, "unlike_dropped": unlike} if cfg.similarity is not None else {})}


def model_phrasings(run: RunState, spec: ModelSpec, questions: list[str], n: int) -> dict[str, list[str]]:
    """Each question's rephrasings by a model through the run's cached answerer: 2n requests a question
    (at most 12), each the worked examples in another order, sampled, one rephrasing each, ended at its
    line's end (a base model goes on with the next worked example); all in one call, so the answerer
    batches them. The requests go one order of the examples after another: the cache hands the answerer
    `run.batch_size` of them at a time, and requests that begin alike share their computation there
    (tuneshift_hf.prefixes)."""
    questions = list(dict.fromkeys(questions))
    per = min(2 * n, 2 * len(SHOTS))  # past that the requests would repeat
    requests = [few_shot_request(q, k) for k in range(per) for q in questions]
    sampling = Sampling(max_new_tokens=48, temperature=0.8, top_p=0.95, seed=run.cfg.run.seed, stop=("\n",))
    lines = [(a.text or "").strip().split("\n")[0].strip() for a in run.generate(spec, requests, sampling,
                                                                                 stage="augment")]
    return {q: list(dict.fromkeys(x for k in range(per) if (x := lines[k * len(questions) + i])))
            for i, q in enumerate(questions)}


def few_shot_request(question: str, k: int) -> str:
    """The k-th request: four worked examples rotated by k (reversed from the second round on), then the
    question, in the form every answerer puts a prompt in (a base model's "Question: ...\nAnswer:" turns,
    or a chat user turn)."""
    shots = (SHOTS[k % len(SHOTS):] + SHOTS[: k % len(SHOTS)])[:4]
    if k // len(SHOTS) % 2:  # past one of each rotation, the same four the other way round
        shots.reverse()
    worked = "".join(f"{ASK.format(q=q)}\nAnswer: {a}\n\nQuestion: " for q, a in shots)
    return worked + ASK.format(q=question)
