"""A property of one run directory under any sequence of allowed operations (issue 15's done-when).

Operations: run, kill -9 mid-run, extend rounds, shrink rounds, `train --out`, `verify`. After each
one that finishes, adapter, dataset.jsonl and report.json describe the same pairs, and no file
outside the run directory and the declared `--out` changes (a user's files sit beside them). An
unfinished run (killed) has run.json status "running" and no report.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, TINY, run_cli, tiny_overrides
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ownership import assert_agree, snapshot

CONFIG = str(TINY / "config.toml")
OPERATIONS = ("run", "kill", "extend", "shrink", "train_out", "verify")
KILL_AT = ({"stage": "answer", "round": 1, "at": "progress"}, {"stage": "score", "round": 2, "at": "start"},
           {"stage": "train", "round": None, "at": "progress"})


def fault_env(fault: dict) -> dict[str, str]:
    path = str(ROOT / "tests") + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {"TUNESHIFT_PLUGINS": "fault_plugin", "TS_FAULT": json.dumps({**fault, "action": "kill", "nth": 1}),
            "PYTHONPATH": path}


@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(st.tuples(st.sampled_from(OPERATIONS), st.integers(0, len(KILL_AT) - 1)),
                      min_size=3, max_size=4))
def test_any_sequence_of_operations_keeps_the_run_consistent(tiny_models, tmp_root, steps):
    home = tmp_root()
    out, adapter_out = home / "run", home / "adapter-copy"
    (home / "notes.txt").write_text("the user's own file\n")
    (home / "project").mkdir()
    (home / "project" / "config.toml").write_text("# mine\n")
    outside = {**snapshot(home / "project"), "notes.txt": snapshot(home)["notes.txt"]}
    models = snapshot(tiny_models["dir"])
    rounds = 2
    finished = False
    for op, which in [("run", 0), *steps]:
        if op in ("extend", "shrink"):
            rounds = min(rounds + 1, 3) if op == "extend" else max(rounds - 1, 1)
        args = ["run", CONFIG, "--out", str(out), *tiny_overrides(tiny_models, **{"verify.enabled": False,
                                                                                 "run.rounds": rounds})]
        if op == "kill":
            cmd = [sys.executable, "-c", "import sys; from tuneshift._cli import main; sys.exit(main())", *args]
            killed = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **fault_env(KILL_AT[which])},
                                    capture_output=True, text=True, timeout=600)
            # a point past this run's work (it was finished) never fires: then it simply finished
            assert killed.returncode in (0, -signal.SIGKILL), killed.stderr[-2000:]
            finished = killed.returncode == 0
        elif op == "train_out":
            if not finished:
                continue
            result = run_cli("train", str(out), "--out", str(adapter_out))
            assert result.returncode == 0, result.stderr[-2000:]
            assert (adapter_out / "adapter_model.safetensors").is_file()
        elif op == "verify":
            if not finished:
                continue
            result = run_cli("verify", str(out))
            assert result.returncode == 0, result.stderr[-2000:]
        else:
            result = run_cli(*args)
            assert result.returncode == 0, result.stderr[-2000:]
            finished = True
        status = json.loads((out / "run.json").read_text())["status"] if (out / "run.json").exists() else None
        if status == "ok":
            assert_agree(out)
        else:  # unfinished (killed): no report claims a result the files do not hold
            assert not (out / "report.json").exists()
        assert {**snapshot(home / "project"), "notes.txt": snapshot(home)["notes.txt"]} == outside
        assert snapshot(tiny_models["dir"]) == models
        assert {p.name for p in home.iterdir()} <= {"adapter-copy", "notes.txt", "project", "run"}


# hypothesis runs the test several times per call: module-scoped fixtures, folders made per example
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def tiny_models(tiny):
    return tiny


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory):
    return lambda: tmp_path_factory.mktemp("ops")
