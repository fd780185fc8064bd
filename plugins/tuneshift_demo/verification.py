"""Does the data-free verification track the truth? The demo is the one place that can tell.

Every arm's target (with its adapter, or none for zero_shot) is verified on
the held-out prompts of the same seed's tuneshift run, against the same teacher
answers, so the arms differ only in what their target learnt. Then the
agreement is set beside the true held-out accuracy: the rank correlation over
arms x seeds says whether a user without an evaluation set can trust it.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Callable

from tuneshift.api import spearman, write_json

from .arms import runs_pipeline

MEASURES = {"agreement": ("overall", "agreement"), "knowledge_agreement": ("knowledge", "agreement"),
            "exact": ("overall", "exact"), "similarity": ("overall", "similarity"),
            "beats_untrained": ("overall", "beats_untrained"), "gap_closed": ("overall", "gap_closed")}
"""Per-arm numbers taken from each verification; `agreement` is the headline."""


def adapter_of(out: Path, arm: str, seed: int) -> str | None:
    """Where run_arm left the arm's adapter (zero_shot has none: the untrained target)."""
    if arm == "zero_shot":
        return None
    if runs_pipeline(arm):
        return str(out / "arms" / f"{arm}-s{seed}" / "run" / "adapter")
    return str(out / "arms" / f"{arm}-s{seed}" / "adapter")


def verify_arm(arm: str, seed: int, ctx: dict[str, Any]) -> dict[str, Any]:
    """The arm's verification on its seed's tuneshift held-out prompts, cached in the arm's folder."""
    from tuneshift.api import verify_adapter

    out: Path = ctx["out"]
    done = out / "arms" / f"{arm}-s{seed}" / "verification.json"
    if done.exists():
        return json.loads(done.read_text())
    section = verify_adapter(ctx["state"], out / "arms" / f"tuneshift-s{seed}" / "run", adapter_of(out, arm, seed))
    write_json(done, section)
    return section


def verify_arms(arms: tuple[str, ...], seeds: list[int], ctx: dict[str, Any],
                release: Callable[[], None]) -> dict[str, list[dict[str, Any]]]:
    checks: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for seed in seeds:
        for arm in arms:
            checks[arm].append(verify_arm(arm, seed, ctx))
            release()
    return checks


def summarise(results: dict[str, list[dict[str, Any]]], checks: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-arm data-free measures beside the accuracy, and their rank correlation with it over arms x seeds."""
    arms: dict[str, Any] = {}
    pairs: dict[str, list[tuple[float, float]]] = {m: [] for m in MEASURES}
    for arm, sections in checks.items():
        row: dict[str, Any] = {}
        for measure, (group, key) in MEASURES.items():
            values = [s[group].get(key) for s in sections]
            if any(v is None for v in values):
                continue
            row[measure] = round(statistics.fmean(values), 4)
            if measure == "agreement":
                row["per_seed"] = values
            pairs[measure] += [(v, r["accuracy"]) for v, r in zip(values, results[arm])]
        row["held_out"] = sections[0]["overall"]["n"] if sections else 0
        arms[arm] = row
    rho = {m: _rho(p) for m, p in pairs.items() if p}
    return {"measure": "agreement", "spearman": rho.get("agreement"), "spearman_by_measure": rho,
            "points": len(pairs["agreement"]), "arms": arms}


def _rho(pairs: list[tuple[float, float]]) -> float | None:
    value = spearman([a for a, _ in pairs], [b for _, b in pairs])
    return None if value is None else round(value, 4)


def markdown(report: dict[str, Any]) -> list[str]:
    """report.md's section: per-arm data-free measures beside the accuracy, and the correlation."""
    v = report.get("verification")
    if not v:
        return []
    rho = v["spearman"]
    lines = ["", "## Data-free verification", "",
             "Each arm's target verified without the private data, on held-out prompts the tuneshift run's "
             "expander drew and no arm trained on (docs/verification.md): agreement with the teacher's answers "
             "(content words), exact agreement, and the share of prompts where training lowered the NLL of the "
             "teacher's answer.", "",
             "| arm | accuracy (true) | agreement (data-free) | knowledge agreement | exact | beats untrained |",
             "| --- | --- | --- | --- | --- | --- |"]
    for arm, row in v["arms"].items():
        cells = [row.get(k) for k in ("agreement", "knowledge_agreement", "exact", "beats_untrained")]
        lines.append(f"| {arm} | {report['arms'][arm]['accuracy']:.3f} | "
                     + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")
    verdict = "undefined (one side is constant)" if rho is None else f"**{rho:.2f}**"
    others = [f"{m} {r:.2f}" for m, r in v["spearman_by_measure"].items() if m != "agreement" and r is not None]
    lines += ["", f"Spearman rank correlation of data-free agreement with true held-out accuracy over "
                  f"{v['points']} arm x seed points: {verdict} (useful when >= 0.8)."
                  + (f" Other measures: {', '.join(others)}." if others else "")]
    return lines


def plot(out: Path, report: dict[str, Any]) -> list[str]:
    """agreement.png: data-free agreement against true accuracy, one point per arm and seed."""
    v = report.get("verification")
    if not v:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for arm, row in v["arms"].items():
        ax.scatter(report["arms"][arm]["per_seed"], row.get("per_seed", []), label=arm, s=40)
    ax.set_xlabel("true held-out accuracy")
    ax.set_ylabel("data-free agreement with the teacher")
    rho = "n/a" if v["spearman"] is None else f"{v['spearman']:.2f}"
    ax.set_title(f"Does verification track the truth? Spearman {rho}")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "agreement.png", dpi=110)
    plt.close(fig)
    return ["agreement.png"]
