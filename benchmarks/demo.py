"""The demo's quality targets as JSON: recovery, the ablation margins, the selection and verification checks.

    python benchmarks/demo.py [--preset quick|full] [--domain organisation|support] [--out DIR] [--seeds N]
                              [--generators NAMES|all]
    python benchmarks/demo.py --report DIR/report.json

Runs `tuneshift demo` (every step cached under DIR and $TUNESHIFT_CACHE, so a
finished DIR only reads back) and prints each target beside its measured value
and whether it is met. A rerun on a finished DIR rewrites its report.json with
the rerun's own wall time and stage seconds (seconds, as cached steps cost
nothing): `--report` prints a cold run's report.json as it was, running
nothing. The comparisons are within the run: tuneshift against its own floor,
ceiling and ablations, trained on the same machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers a reader of the issue asks for, from a demo's report.json."""
    verification = report.get("verification") or {}
    return {
        "preset": report["preset"], "seeds": report["seeds"],
        "accuracy": {arm: round(r["accuracy"], 4) for arm, r in report["arms"].items()},
        "std": {arm: round(r["std"], 4) for arm, r in report["arms"].items()},
        "recovery": round(report["recovery"], 4), "recovery_std": round(report["recovery_std"], 4),
        "guess_baseline": report.get("guess_baseline"), "verification_spearman": verification.get("spearman"),
        "goals": {name: {"value": g["value"], "target": g["target"], "met": g["met"]}
                  for name, g in report.get("goals", {}).items()},
        "ablations": report.get("ablations") or {},
        "kept_set": {k: ((report.get("selection") or {}).get(f"tuneshift_arm_{k}") or {}).get("mean")
                     for k in ("false_keep_rate", "right_facts")},
        "wall_seconds": report["wall_seconds"], "peak_rss_mb": report["peak_rss_mb"],
        "stage_seconds": report.get("stage_seconds") or {},
        "domain": report.get("domain", "organisation"),
        "generators": {name: {k: g[k] for k in ("accuracy", "std", "dataset_size") if k in g}
                       for name, g in (report.get("generators") or {}).items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["quick", "full"], default="quick")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="the demo's folder (as tuneshift demo)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--domain", choices=["organisation", "support"], default="organisation")
    parser.add_argument("--generators", default=None, help="also the tuneshift arm with each (comma-separated, or all)")
    parser.add_argument("--report", type=Path, default=None, help="print this report.json's numbers; run nothing")
    ns = parser.parse_args()
    if ns.report is not None:
        print(json.dumps(headline(json.loads(ns.report.read_text(encoding="utf-8"))), indent=1))
        return
    from tuneshift._commands.state import State
    from tuneshift._registry import Registry
    from tuneshift_demo.generators import parse
    from tuneshift_demo.run import run_demo

    report = run_demo(State(Registry(), []), ns.preset, ns.out, ns.seeds, domain_name=ns.domain,
                      compared=parse(ns.generators))
    print(json.dumps(headline(report), indent=1))


if __name__ == "__main__":
    main()
