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
from typing import Any

from tuneshift import _agreement as agree
from tuneshift._cache import fingerprint
from tuneshift._rundir import atomic_write_text, read_json, write_json, write_jsonl
from tuneshift._stages.base import RunState
from tuneshift._stages.score import ppl_ratio
from tuneshift.kinds import Candidate, ExpansionState, ModelSpec, Score

VERIFY_ROUND = 1_000_000
"""The expander's round number for the held-out draw: never a training round, so never trained on."""
PROPOSAL_FACTOR = 4
"""Ask for this many times verify.size proposals, then draw verify.size of the new ones at random: the
expander's first proposals are its favourite few question forms, a random draw is its distribution."""


def run(run: RunState) -> dict[str, Any] | None:
    """The pipeline's stage: verify the run's own adapter, when [verify] is on and an adapter was trained."""
    model = run.trained_target()
    if not run.cfg.verify.enabled or model is None:
        return None
    section, rows = verify(run, model)
    write_outputs(run.dir.path, section, rows)
    return section


def held_out(run: RunState) -> dict[str, Any]:
    """The held-out prompts, drawn once per (run's prompts, size, seed, expander, deduper) and kept in state/."""
    cfg = run.cfg.verify
    known = [c.prompt for c in run.candidates] + run.seeds + [a["prompt"] for a in run.augmented]  # all trained on
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


def verify(run: RunState, model: ModelSpec) -> tuple[dict[str, Any], list[dict[str, Any]]]:
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


def measure(run: RunState, model: ModelSpec, answered: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """One row per (prompt, teacher answer): the answers, their agreement and their per-character NLLs."""
    if not answered:
        return []
    prompts = [p for p, _ in answered]
    after = [a.text for a in run.generate(model, prompts, run.greedy, stage="verify")]
    before = [a.text for a in run.generate(run.target, prompts, run.greedy, stage="verify")]
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


def knowledge_flags(run: RunState, answered: list[tuple[str, str]], scores: list[Score]) -> list[bool]:
    """Which held-out answers the run's selector would have kept: the knowledge the teacher has and its base lacks."""
    cands = [Candidate(id=-1 - i, round=VERIFY_ROUND, prompt=p, origin="verify", response=r,
                       nll_finetuned=s.nll_finetuned, nll_base=s.nll_base, ppl_ratio=ppl_ratio(s.nll_base, s.nll_finetuned),
                       extra={"n_tokens": s.n_tokens, **s.extra})  # what the score stage gives selectors
             for i, ((p, r), s) in enumerate(zip(answered, scores, strict=True))]
    decisions = run.impl["selector"].decide(cands, [c for c in run.candidates if c.kept])
    return [d.keep for d in decisions]


def add_similarity(run: RunState, rows: list[dict[str, Any]]) -> None:
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


def regions(run: RunState, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


# --- where users read it: verification.jsonl (per prompt), verification.md and a plot ---

COLUMNS = (("n", "prompts"), ("agreement", "agreement"), ("agreement_before", "untrained"),
           ("exact", "exact"), ("similarity", "similarity"), ("gap_after", "NLL gap"),
           ("gap_closed", "gap closed"), ("beats_untrained", "beats untrained"))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table(section: dict[str, Any]) -> list[str]:
    """Markdown table: all held-out prompts, the knowledge subset, then each region."""
    columns = [(k, title) for k, title in COLUMNS if k != "similarity" or section.get("embeddings")]
    lines = ["| region | " + " | ".join(t for _, t in columns) + " |", "| --- |" + " --- |" * len(columns)]
    groups = [("**all held-out prompts**", section["overall"]), ("**knowledge** (the selector would keep)",
                                                                  section["knowledge"])]
    groups += [(r["label"], r) for r in section["regions"]]
    for name, metrics in groups:
        lines.append(f"| {name} | " + " | ".join(_cell(metrics.get(k)) for k, _ in columns) + " |")
    return lines


def markdown(section: dict[str, Any], plot_name: str | None) -> str:
    held = section["held_out"]
    lines = ["# Data-free verification", "",
             f"Target {section['model']['base']} with adapter {section['model']['adapter']}, on "
             f"{held['answered']} held-out prompts the run's expander proposed and never trained on "
             f"({held['proposed']} proposed, {held['duplicates']} dropped as duplicates of the run's prompts).",
             "", "agreement: share of the teacher answer's content words in the target's answer (untrained: the "
             "target before training); exact: normalised equality; NLL gap: nats per character of the teacher's "
             "answer under the target minus under the teacher; gap closed: share of the untrained target's gap "
             "that training closed; beats untrained: share of prompts where training lowered that NLL.", ""]
    lines += table(section)
    if plot_name:
        lines += ["", f"![{plot_name}]({plot_name})"]
    return "\n".join(lines) + "\n"


def plot(path: Path, section: dict[str, Any]) -> bool:
    """Agreement per region, before and after training, beside the teacher's own (1.0)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    groups = [("all", section["overall"])] + [(r["label"][:28], r) for r in section["regions"]]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(groups)), 4))
    xs = range(len(groups))
    ax.bar([x - 0.2 for x in xs], [g.get("agreement_before") or 0 for _, g in groups], 0.4, label="untrained",
           color="#999")
    ax.bar([x + 0.2 for x in xs], [g.get("agreement") or 0 for _, g in groups], 0.4, label="trained", color="#27c")
    ax.set_xticks(list(xs), [f"{name}\n(n={g['n']})" for name, g in groups], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("agreement with the teacher")
    ax.set_title("Data-free verification: what moved, per region of knowledge")
    ax.legend()
    fig.tight_layout()
    partial = path.with_name(f".{path.name}.partial.png")  # atomic, like every file of a run
    fig.savefig(partial, dpi=110)
    plt.close(fig)
    partial.replace(path)
    return True


def write_outputs(out: Path, section: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    write_jsonl(out / "verification.jsonl", rows)
    drawn = plot(out / "verification.png", section) if section["overall"]["n"] else False
    atomic_write_text(out / "verification.md", markdown(section, "verification.png" if drawn else None))
