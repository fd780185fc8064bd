"""Write a verification where users read it: verification.jsonl (per prompt), verification.md and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .rundir import atomic_write_text, write_jsonl

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
