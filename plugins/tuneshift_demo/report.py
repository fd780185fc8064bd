"""Aggregate the arms over seeds into report.json (contract.md's schema), report.md and PNG plots."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from tuneshift.api import atomic_write_text, read_json, read_jsonl, write_json

from . import generators, selection, verification
from .checking import beats
from .arms import ABLATION


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(preset: str, seeds: list[int], teacher: dict[str, Any], results: dict[str, list[dict[str, Any]]],
              wall: float, peak_rss_mb: float) -> dict[str, Any]:
    arms: dict[str, Any] = {}
    for arm in results:  # in the order the arms ran: the five, then the ablations
        per_seed = [r["accuracy"] for r in results[arm]]
        arms[arm] = {"accuracy": statistics.fmean(per_seed), "std": _std(per_seed), "per_seed": per_seed}
        sizes = [r["dataset_size"] for r in results[arm] if "dataset_size" in r]
        if sizes:
            arms[arm]["dataset_size"] = round(statistics.fmean(sizes), 1)
    zero, ceil, ts = (arms[a]["accuracy"] for a in ("zero_shot", "ceiling", "tuneshift"))
    per_seed_recovery = [(t - z) / (c - z) if c != z else 0.0 for t, z, c in
                         zip(arms["tuneshift"]["per_seed"], arms["zero_shot"]["per_seed"], arms["ceiling"]["per_seed"])]
    report = {
        "preset": preset, "seeds": seeds,
        "teacher": {k: teacher[k] for k in ("model", "accuracy", "general_intact", "general_checked", "general_right")
                    if k in teacher},
        "arms": arms,
        "recovery": (ts - zero) / (ceil - zero) if ceil != zero else 0.0,
        "recovery_std": _std(per_seed_recovery),
        "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_rss_mb, 1),
    }
    report["comparisons"] = {other: beats(arms["tuneshift"], arms[other]) for other in ("no_filter", "seeds_only")}
    report["ablations"] = {arm.removeprefix(ABLATION): {
        "accuracy": arms[arm]["accuracy"], "std": arms[arm]["std"],
        "versus_tuneshift": round(arms[arm]["accuracy"] - arms["tuneshift"]["accuracy"], 4)}
        for arm in arms if arm.startswith(ABLATION)}
    return report


def per_relation(evals: list[dict[str, Any]], results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Right / asked per relation and arm, summed over seeds: which kinds of fact moved and which did not."""
    table: dict[str, dict[str, list[int]]] = {}
    for arm, runs in results.items():
        for run in runs:
            for question, right in zip(evals, run.get("correct", [])):
                cell = table.setdefault(question["relation"], {}).setdefault(arm, [0, 0])
                cell[0] += bool(right)
                cell[1] += 1
    return table


def _general_right(teacher: dict[str, Any]) -> str:
    right = teacher.get("general_right")
    if not right:
        return ""
    return (f"; right on {right['teacher']} (base: {right['base']}), right on {right['teacher_where_base_right']} "
            f"of the {right['base']} the base gets right")


# The done-when targets of the demo (issues 5, 8, 9, 17 and 19; the support desk's, issue 20), per domain
# and preset.
RECOVERY_TARGET = {"organisation": {"quick": 0.85, "full": 0.90}, "support": {"full": 0.80}}
CEILING_TARGET = {"organisation": {"full": 0.80}, "support": {}}
QUICK_WALL_SECONDS = 12 * 60
QUICK_WALL_LIMIT = 20 * 60
PEAK_RSS_MB = 8 * 1024
FALSE_KEEP_TARGET = 0.05
TEACHER_ACCURACY = 0.9
SPEARMAN_TARGET = 0.8
IN_LOOP_SHARE = 0.95


def goals(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every target beside its measured value and whether it is met (None: this run cannot tell), so the
    report states what was missed instead of leaving it to the reader."""
    def goal(value: Any, target: str, met: bool | None, **extra: Any) -> dict[str, Any]:
        return {"value": value, "target": target, "met": met, **extra}

    out: dict[str, dict[str, Any]] = {}
    domain = report.get("domain", "organisation")  # reports written before the support desk have none
    if (target := RECOVERY_TARGET[domain].get(report["preset"])) is not None:
        out["recovery"] = goal(round(report["recovery"], 4), f">= {target}", report["recovery"] >= target)
    if (least := CEILING_TARGET[domain].get(report["preset"])) is not None:
        ceiling = report["arms"]["ceiling"]["accuracy"]
        out["ceiling_accuracy"] = goal(round(ceiling, 4), f">= {least}", ceiling >= least)
    for other, c in report["comparisons"].items():
        out[f"beats_{other}"] = goal(c["margin"], "margin > 2 x std over seeds", c["beats"])
    teacher = report["teacher"]
    out["teacher_accuracy"] = goal(teacher["accuracy"], f">= {TEACHER_ACCURACY}",
                                   teacher["accuracy"] >= TEACHER_ACCURACY)
    if right := teacher.get("general_right"):
        kept = right["teacher_where_base_right"]
        out["teacher_general_intact"] = goal(kept, f"== {right['base']} (all the base gets right)",
                                             kept == right["base"])
    if report["preset"] == "quick":
        out["quick_wall_seconds"] = goal(report["wall_seconds"], f"<= {QUICK_WALL_SECONDS} cold",
                                         report["wall_seconds"] <= QUICK_WALL_SECONDS,
                                         note="this invocation's time: cached steps cost nothing, so only a cold "
                                              "run counts")
        out["quick_wall_seconds_limit"] = goal(report["wall_seconds"], f"<= {QUICK_WALL_LIMIT} cold",
                                               report["wall_seconds"] <= QUICK_WALL_LIMIT,
                                               note="issue 19's bound with the transfer-quality work in; "
                                                    "quick_wall_seconds is issue 17's")
        out["peak_rss_mb"] = goal(report["peak_rss_mb"], f"<= {PEAK_RSS_MB}", report["peak_rss_mb"] <= PEAK_RSS_MB)
    if (rho := (report.get("verification") or {}).get("spearman", "absent")) != "absent":
        out["verification_spearman"] = goal(rho, f">= {SPEARMAN_TARGET}",
                                            None if rho is None else rho >= SPEARMAN_TARGET)
    sel = report.get("selection") or {}
    if versus := sel.get("versus_paper_tau"):
        best = max(versus, key=lambda name: versus[name]["margin"])
        out["selection_beats_paper_tau"] = goal(versus[best]["margin"], "margin > 2 x std over seeds at equal size",
                                                versus[best]["beats"], method=best)
    if (fkr := (sel.get("tuneshift_arm_false_keep_rate") or {}).get("mean")) is not None:
        facts = (sel.get("tuneshift_arm_right_facts") or {}).get("mean")
        out["kept_false_keep_rate"] = goal(round(fkr, 4), f"<= {FALSE_KEEP_TARGET}", fkr <= FALSE_KEEP_TARGET,
                                           note=f"the tuneshift arm's kept set, judged by the domain's ground truth; "
                                                f"distinct facts judged right: {facts if facts is None else round(facts, 1)}")
    if sel.get("pool"):
        out["selection_in_loop_beats_paper_tau"] = _in_loop(sel, report["comparisons"]["no_filter"], goal)
    return out


def _in_loop(sel: dict[str, Any], versus_no_filter: dict[str, Any], goal: Any) -> dict[str, Any]:
    """Where the paper's tau keeps (nearly) the whole unfiltered pool, the no_filter arm is that filter in the
    loop, cut to tuneshift's size: tuneshift against it is the selection comparison at the arms' own size."""
    kept = sel["methods"]["ppl-ratio"]["kept"]["per_seed"]
    share = min(k / p for k, p in zip(kept, sel["pool"]) if p)
    same = share >= IN_LOOP_SHARE
    return goal(versus_no_filter["margin"], "margin > 2 x std over seeds at equal size",
                versus_no_filter["beats"] if same else None,
                note=f"tau 1.5 keeps at least {share:.1%} of each seed's unfiltered pool, so the no_filter arm "
                     + ("is" if same else "is not") + " the paper's filter in the loop")


def write(out: Path, report: dict[str, Any], tuneshift_runs: list[Path]) -> None:
    report["goals"] = goals(report)
    write_json(out / "report.json", report)
    plots = plot(out, report, tuneshift_runs)
    atomic_write_text(out / "report.md", markdown(report, plots))


def markdown(report: dict[str, Any], plots: list[str]) -> str:
    lines = [f"# tuneshift demo ({report['preset']})", "",
             f"Teacher: {report['teacher']['model']}, held-out accuracy {report['teacher']['accuracy']:.2f}, "
             f"general answers identical to the base on {report['teacher']['general_intact']} of "
             f"{report['teacher']['general_checked']}{_general_right(report['teacher'])}.", "",
             "| arm | accuracy | std | per seed | pairs |", "| --- | --- | --- | --- | --- |"]
    for arm, r in report["arms"].items():
        seeds = ", ".join(f"{a:.2f}" for a in r["per_seed"])
        lines.append(f"| {arm} | {r['accuracy']:.3f} | {r['std']:.3f} | {seeds} | {r.get('dataset_size', '')} |")
    lines += ["", f"Recovery (tuneshift - zero_shot) / (ceiling - zero_shot): **{report['recovery']:.3f}** "
                  f"(std over seeds {report['recovery_std']:.3f}).", ""]
    if "guess_baseline" in report:
        lines += [f"Answering every question with its relation's most common value scores "
                  f"{report['guess_baseline']:.3f}: an arm at or below that may have learnt the domain's "
                  "vocabulary rather than its facts.", ""]
    for other, c in report["comparisons"].items():
        if c["beats"] is None:
            lines.append(f"- tuneshift vs {other}: margin {c['margin']:+.3f}; one seed gives no std, so no verdict "
                         "(run with --seeds 3 or the full preset).")
            continue
        verdict = "beats" if c["beats"] else "does NOT beat"
        lines.append(f"- tuneshift {verdict} {other} by more than twice the std: margin {c['margin']:+.3f}, "
                     f"2 x std {c['twice_std']:.3f}.")
    for name, a in (report.get("ablations") or {}).items():
        lines.append(f"- ablation {name} (the tuneshift arm with that part changed): {a['accuracy']:.3f} +- "
                     f"{a['std']:.3f}, {a['versus_tuneshift']:+.3f} against tuneshift.")
    if table := report.get("per_relation"):
        arms = list(report["arms"])
        lines += ["", "Right / asked per relation, summed over seeds:", "", "| relation | " + " | ".join(arms) + " |",
                  "| --- |" + " --- |" * len(arms)]
        lines += [f"| {rel} | " + " | ".join("{}/{}".format(*row.get(a, (0, 0))) for a in arms) + " |"
                  for rel, row in table.items()] + [""]
    lines += generators.markdown(report)
    lines += _goals_markdown(report.get("goals", {}))
    lines += selection.markdown(report)
    lines += verification.markdown(report)
    lines += ["", f"Wall time {report['wall_seconds']:.0f} s, peak RSS {report['peak_rss_mb']:.0f} MB.", ""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _goals_markdown(targets: dict[str, dict[str, Any]]) -> list[str]:
    if not targets:
        return []
    mark = {True: "met", False: "**not met**", None: "cannot tell from this run"}
    lines = ["", "## Targets", "", "| target | measured | goal | |", "| --- | --- | --- | --- |"]
    for name, g in targets.items():
        what = name + (f" ({g['method']})" if "method" in g else "")
        value = round(g["value"], 3) if isinstance(g["value"], float) else g["value"]
        note = f" ({g['note']})" if "note" in g else ""
        lines.append(f"| {what} | {value} | {g['target']} | {mark[g['met']]}{note} |")
    return lines


def plot(out: Path, report: dict[str, Any], runs: list[Path]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(7, 4))
    arms = list(report["arms"])
    ax.bar(arms, [report["arms"][a]["accuracy"] for a in arms], yerr=[report["arms"][a]["std"] for a in arms],
           capsize=5, color=["#999", "#2a7", "#27c", "#c72", "#a5a"])
    if "guess_baseline" in report:
        ax.axhline(report["guess_baseline"], ls="--", color="#555", label="most common value per relation")
        ax.legend(loc="upper right")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"Accuracy per arm (mean and std over {len(report['seeds'])} seeds)")
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=110)
    names.append("accuracy.png")
    plt.close(fig)
    if runs:
        rows = read_jsonl(runs[0] / "candidates.jsonl")
        import math

        fig, ax = plt.subplots(figsize=(7, 4))
        for fate, colour in (("kept", "#27c"), ("below_threshold", "#c72")):
            values = [math.log10(max(r["ppl_ratio"], 1e-6)) for r in rows if r["fate"] == fate and r["ppl_ratio"]]
            if values:
                ax.hist(values, bins=30, alpha=0.6, label=f"{fate} ({len(values)})", color=colour)
        ax.set_xlabel("log10 PPL_base / PPL_finetuned of the teacher's answer")
        ax.set_ylabel("candidates")
        ax.legend()
        ax.set_title("Scores of kept and dropped candidates (tuneshift arm, first seed)")
        fig.tight_layout()
        fig.savefig(out / "scores.png", dpi=110)
        names.append("scores.png")
        plt.close(fig)
        rounds = [r for r in read_json(runs[0] / "report.json")["rounds"] if "proposed" in r]
        fig, ax1 = plt.subplots(figsize=(7, 4))
        ax1.plot([r["round"] for r in rounds], [r["dataset_size"] for r in rounds], "o-", color="#27c")
        ax1.set_xlabel("round")
        ax1.set_ylabel("kept pairs (cumulative)", color="#27c")
        ax2 = ax1.twinx()
        ax2.plot([r["round"] for r in rounds], [r["diversity"].get("mean_cosine_distance", 0) for r in rounds],
                 "s--", color="#c72")
        ax2.set_ylabel("mean cosine distance of the round's kept prompts", color="#c72")
        ax1.set_title("Dataset growth and diversity per round (first seed)")
        fig.tight_layout()
        fig.savefig(out / "rounds.png", dpi=110)
        names.append("rounds.png")
        plt.close(fig)
    return names + selection.plot(out, report) + verification.plot(out, report)

