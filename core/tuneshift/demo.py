"""`tuneshift demo`: the embedded default job (SmolLM2 teacher -> Gemma 3 target, offline on CPU).

The work lives in the built-in `tuneshift_demo` package; this module only
runs it and prints the table at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_demo(state: Any, preset: str, out_dir: Path, n_seeds: int | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from tuneshift_demo.run import run_demo as run

    report = run(state.registry, preset, out_dir, n_seeds)
    table = Table("arm", "accuracy", "std", "pairs", title=f"tuneshift demo ({preset}), held-out accuracy")
    for arm, r in report["arms"].items():
        pairs = r.get("dataset_size")  # a mean over seeds
        table.add_row(arm, f"{r['accuracy']:.3f}", f"{r['std']:.3f}", "" if pairs is None else f"{pairs:g}")
    console = Console(stderr=True)
    console.print(table)
    right = report["teacher"].get("general_right") or {}
    console.print(f"teacher accuracy {report['teacher']['accuracy']:.3f}, general questions right "
                  f"{right.get('teacher', '?')}/{report['teacher']['general_checked']} (base {right.get('base', '?')}); "
                  f"recovery {report['recovery']:.3f} (std {report['recovery_std']:.3f}); "
                  f"{report['wall_seconds']:.0f} s, peak RSS {report['peak_rss_mb']:.0f} MB")
    rho = (report.get("verification") or {}).get("spearman")
    if rho is not None:
        console.print(f"data-free verification: agreement ranks the arms with Spearman {rho:.2f} against the "
                      "true held-out accuracy")
    console.print(f"report: {out_dir / 'report.md'}")
