"""Stage 8: data-free verification. How much of the teacher moved into the trained target?

The private data is gone, so there is no held-out set: draw one. The run's
expander proposes one more batch of prompts (an extra round with its own
round number, so the draw is reproducible and cached), the deduper drops any
that repeat a prompt the run has seen, and on what is left the trained target
is compared with the teacher (answer agreement, perplexity of the teacher's
answers) and with its untrained self, per region of knowledge. Every model
call goes through the run's cache, so a rerun recomputes nothing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import agreement as agree
from ..cache import fingerprint
from ..kinds import Candidate, ExpansionState, ModelSpec, Score
from ..rundir import read_json, write_json
from .score import ppl_ratio
from .train import trained_target

if TYPE_CHECKING:
    from ..runner import Run

VERIFY_ROUND = 1_000_000
"""The expander's round number for the held-out draw: never a training round, so never trained on."""
PROPOSAL_FACTOR = 4
"""Ask for this many times verify.size proposals, then draw verify.size of the new ones at random: the
expander's first proposals are its favourite few question forms, a random draw is its distribution."""


def run(run: "Run") -> dict[str, Any] | None:
    """The pipeline's stage: verify the run's own adapter, when [verify] is on and an adapter was trained."""
    model = trained_target(run)
    if not run.cfg.verify.enabled or model is None:
        return None
    section, rows = verify(run, model)
    from ..verify_report import write_outputs

    write_outputs(run.dir.path, section, rows)
    return section


def untrained_target(run: "Run") -> ModelSpec:
    t = run.cfg.target
    return ModelSpec(base=t.model, trust_remote_code=t.trust_remote_code)


def held_out(run: "Run") -> dict[str, Any]:
    """The held-out prompts, drawn once per (run's prompts, size, seed, expander, deduper) and kept in state/."""
    cfg = run.cfg.verify
    known = [c.prompt for c in run.candidates] + run.seeds
    key = fingerprint("verify-held-out", "random-draw", known, cfg.size, run.cfg.run.seed,
                      run.impl["expander"].identity(), run.impl["deduper"].identity())
    path = run.dir.state / "verify" / "held-out.json"
    if path.exists():
        saved = read_json(path)
        if saved.get("key") == key:
            return saved
    state = ExpansionState(round=VERIFY_ROUND, seeds=run.seeds, candidates=list(run.candidates))
    proposals = run.impl["expander"].propose(state, cfg.size * PROPOSAL_FACTOR)
    prompts = [p.prompt.strip() for p in proposals if p.prompt and p.prompt.strip()]
    found = run.impl["deduper"].find_duplicates(prompts, known) if prompts else []
    fresh = [p for p, dup in zip(prompts, found, strict=True) if dup is None]
    drawn = sorted(random.Random(key).sample(range(len(fresh)), min(cfg.size, len(fresh))))
    saved = {"key": key, "proposed": len(prompts), "duplicates": len(prompts) - len(fresh),
             "prompts": [fresh[i] for i in drawn]}
    write_json(path, saved)
    return saved


def verify(run: "Run", model: ModelSpec) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Compare `model` (the target with some adapter) with the teacher and the untrained target on the
    held-out prompts; returns report.json's section and one row per prompt."""
    drawn = held_out(run)
    prompts = drawn["prompts"]
    teacher = run.generate(run.teacher, prompts, run.greedy, stage="verify")
    answered = [(p, a.text.strip()) for p, a in zip(prompts, teacher) if a.error is None and (a.text or "").strip()]
    rows = measure(run, model, answered)
    section = {
        "model": {"base": model.base, "adapter": str(Path(model.adapter).resolve()) if model.adapter else None},
        "held_out": {"proposed": drawn["proposed"], "duplicates": drawn["duplicates"], "drawn": len(prompts),
                     "answered": len(answered)},
        "embeddings": run.impl["deduper"].name if rows and "similarity" in rows[0] else None,
        "overall": summarise(rows),
        "knowledge": summarise([r for r in rows if r["knowledge"]]),
        "regions": regions(run, rows),
    }
    return section, rows


def measure(run: "Run", model: ModelSpec, answered: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """One row per (prompt, teacher answer): the answers, their agreement and their per-character NLLs."""
    if not answered:
        return []
    prompts = [p for p, _ in answered]
    after = [a.text for a in run.generate(model, prompts, run.greedy, stage="verify")]
    before = [a.text for a in run.generate(untrained_target(run), prompts, run.greedy, stage="verify")]
    by_teacher = run.score_pairs(run.teacher, answered, stage="verify")
    by_target = run.score_pairs(model, answered, stage="verify")  # nll_base: the target without the adapter
    knowledge = knowledge_flags(run, answered, by_teacher)
    weights = agree.informative_weights([r for _, r in answered])
    rows = []
    for i, ((prompt, reference), t, s) in enumerate(zip(answered, by_teacher, by_target, strict=True)):
        nll_after, nll_before = per_char(s, reference, s.nll_finetuned), per_char(s, reference, s.nll_base)
        rows.append({
            "prompt": prompt, "teacher": reference, "after": after[i], "before": before[i],
            "knowledge": knowledge[i], "teacher_ppl_ratio": round(ppl_ratio(t.nll_base, t.nll_finetuned), 4),
            "agreement": agree.content_agreement(reference, after[i], prompt, weights),
            "agreement_before": agree.content_agreement(reference, before[i], prompt, weights),
            "exact": agree.exact_agreement(reference, after[i]),
            "exact_before": agree.exact_agreement(reference, before[i]),
            "nll_teacher": per_char(t, reference, t.nll_finetuned), "nll_after": nll_after,
            "nll_before": nll_before, "beats_untrained": nll_after < nll_before,
        })
    add_similarity(run, rows)
    return rows


def per_char(score: Score, response: str, nll: float) -> float:
    """Mean NLL per token -> nats per character of the response: comparable across tokenizers."""
    return nll * score.n_tokens / max(1, len(response))


def knowledge_flags(run: "Run", answered: list[tuple[str, str]], scores: list[Score]) -> list[bool]:
    """Which held-out answers the run's selector would have kept: the knowledge the teacher has and its base lacks."""
    cands = [Candidate(id=-1 - i, round=VERIFY_ROUND, prompt=p, origin="verify", response=r,
                       nll_finetuned=s.nll_finetuned, nll_base=s.nll_base, ppl_ratio=ppl_ratio(s.nll_base, s.nll_finetuned),
                       extra={"n_tokens": s.n_tokens, **s.extra})  # what the score stage gives selectors
             for i, ((p, r), s) in enumerate(zip(answered, scores, strict=True))]
    decisions = run.impl["selector"].decide(cands, [c for c in run.candidates if c.kept])
    return [d.keep for d in decisions]


def add_similarity(run: "Run", rows: list[dict[str, Any]]) -> None:
    """Cosine similarity of the targets' answers to the teacher's, when the deduper has embeddings."""
    texts = [r[k] or "" for r in rows for k in ("teacher", "after", "before")] + [r["prompt"] for r in rows]
    vectors = run.impl["deduper"].embed(texts)
    if vectors is None:
        return
    for i, row in enumerate(rows):
        teacher, after, before = vectors[3 * i:3 * i + 3]
        row["similarity"] = agree.cosine(teacher, after)
        row["similarity_before"] = agree.cosine(teacher, before)
        row["_prompt_vector"] = vectors[3 * len(rows) + i]


def regions(run: "Run", rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group the prompts into regions of knowledge (clusters of their embeddings, else their most frequent
    entities), each labelled by its most frequent entities, with the measures of its prompts."""
    if not rows:
        return []
    named = [agree.entities(r["prompt"]) or agree.entities(r["teacher"]) for r in rows]
    k = min(run.cfg.verify.regions, max(1, len(rows) // 4))
    vectors = [r.pop("_prompt_vector", None) for r in rows]
    if all(v is not None for v in vectors):
        labels = agree.kmeans(vectors, k, run.cfg.run.seed)
    else:
        labels = agree.group_by_entity(named, k)
    out = []
    for j in sorted(set(labels)):
        members = [i for i, label in enumerate(labels) if label == j]
        name = agree.label_of([named[i] for i in members])
        for i in members:
            rows[i]["region"] = name
        out.append({"label": name, **summarise([rows[i] for i in members])})
    return sorted(out, key=lambda r: (-r["n"], r["label"]))


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over prompts; gaps in nats per character; `gap_closed`: share of the untrained target's gap to
    the teacher that training closed (1: none left, 0: none closed, < 0: wider)."""
    def avg(key: str) -> float | None:
        values = [float(r[key]) for r in rows if r.get(key) is not None]
        return agree.mean(values)

    out: dict[str, Any] = {"n": len(rows)}
    for key in ("agreement", "agreement_before", "exact", "exact_before", "similarity", "similarity_before",
                "nll_teacher", "nll_after", "nll_before", "beats_untrained"):
        out[key] = avg(key)
    if rows:
        out["gap_after"] = out["nll_after"] - out["nll_teacher"]
        out["gap_before"] = out["nll_before"] - out["nll_teacher"]
        out["gap_closed"] = 1 - out["gap_after"] / out["gap_before"] if out["gap_before"] > 0 else None
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()
            if v is not None or k in ("agreement", "n")}
