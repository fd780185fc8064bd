"""Kill `tuneshift run` with SIGKILL in every stage, rerun the same command, get the uninterrupted result.

Each stage is killed three times in a row on one directory, each time in another round and at
another point: as the stage starts (nothing done), after its first batch of work reached the cache,
and after its work but before its checkpoint. Each rerun resumes from what the kills left, and the
last one finishes. The kill comes from tests/fault_plugin.py at that exact event, so no case is a
race against a timer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TINY, run_cli, tiny_overrides
from safetensors.torch import load_file

CONFIG = str(TINY / "config.toml")
OUTPUTS = ("candidates.jsonl", "dataset.jsonl")
NO_VERIFY = {"verify.enabled": False}  # a free section that only measures the result: left out for time
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # on a busy machine torch's spinning threads cost more than they give

# stage -> the three kills in a row: (round, at, nth)
KILL_POINTS: dict[str, list[tuple[int | None, str, int]]] = {
    "expand": [(0, "start", 1), (1, "progress", 1), (2, "end", 1)],
    "dedup": [(0, "start", 1), (1, "progress", 1), (2, "end", 1)],
    "answer": [(0, "start", 1), (1, "progress", 1), (2, "end", 1)],
    "score": [(0, "start", 1), (1, "progress", 1), (2, "end", 1)],
    # training: before the first epoch; with epoch 0's checkpoint on disk; after the adapter is in place
    "train": [(None, "start", 1), (None, "progress", 2), (None, "end", 1)],
}


def fault_env(fault: dict | None) -> dict[str, str]:
    path = str(ROOT / "tests") + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {"TUNESHIFT_PLUGINS": "fault_plugin", "TS_FAULT": json.dumps(fault), "PYTHONPATH": path, **ONE_THREAD}


def start_run(tiny, out: Path, fault: dict | None, settings: dict = NO_VERIFY) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "import sys; from tuneshift._cli import main; sys.exit(main())",
           "run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **settings)]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **fault_env(fault)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)


def interruptible() -> None:
    """In the child, before Python starts: Ctrl-C as in a terminal's foreground. A test run in the background
    of a non-interactive shell (`.ci/run &`) inherits SIGINT ignored, and Python then never installs its
    handler: the self-sent SIGINT of the sigint case would be lost and the run would finish."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def adapter_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory) -> Path:
    """The uninterrupted run, with the same seeds."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **NO_VERIFY), env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    return out


def kill_at(tiny, out: Path, stage: str, round_: int | None, at: str, nth: int, settings: dict = NO_VERIFY) -> None:
    killed = start_run(tiny, out, {"action": "kill", "stage": stage, "round": round_, "at": at, "nth": nth},
                       settings)
    _, stderr = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, f"the fault never fired at {stage} {round_} {at}: {stderr[-2000:]}"
    assert not (out / "report.json").exists()  # it really died before the end


@pytest.mark.parametrize("stage", list(KILL_POINTS))
def test_kill_three_times_and_rerun_equals_an_uninterrupted_run(reference, tiny, tmp_path, stage):
    out = tmp_path / "out"
    for round_, at, nth in KILL_POINTS[stage]:
        kill_at(tiny, out, stage, round_, at, nth)
        for name in OUTPUTS:  # what a kill leaves is whole rounds: a prefix of the final file
            if (out / name).exists():
                assert (reference / name).read_text().startswith((out / name).read_text()), name

    result = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **NO_VERIFY), env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in OUTPUTS:
        assert (out / name).read_text() == (reference / name).read_text(), name
    candidates = lines(out / "candidates.jsonl")
    assert [c["id"] for c in candidates] == list(range(len(candidates)))  # none lost, none twice
    prompts = [d["prompt"] for d in lines(out / "dataset.jsonl")]
    assert len(prompts) == len(set(prompts)) > 0
    report, ref_report = (json.loads((d / "report.json").read_text()) for d in (out, reference))
    assert report["eval"] == ref_report["eval"] and report["counts"] == ref_report["counts"]
    ref_weights, weights = adapter_weights(reference), adapter_weights(out)
    assert weights.keys() == ref_weights.keys()
    assert all(torch.allclose(weights[k], ref_weights[k], atol=1e-6) for k in weights)
    if stage == "train":  # the second kill left epoch 0's checkpoint: training went on from it
        assert report["train"]["resumed_from_epoch"] == 1
    assert not [p.name for p in out.rglob(".*") if p.name not in (".lock", ".tuneshift")]  # no temporary file left behind


def test_kill_in_verify_three_times_and_rerun_equals_an_uninterrupted_run(tiny, tmp_path):
    """The verify stage (held-out prompts, three models' answers, scores) resumes like the others."""
    reference, out = tmp_path / "reference", tmp_path / "out"
    result = run_cli("run", CONFIG, "--out", str(reference), *tiny_overrides(tiny), env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    for at, nth in (("start", 1), ("progress", 2), ("end", 1)):
        kill_at(tiny, out, "verify", None, at, nth, settings={})
        assert (out / "adapter").is_dir()  # the stages before verify had finished
    result = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny), env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "verification.jsonl").read_text() == (reference / "verification.jsonl").read_text()
    report, ref_report = (json.loads((d / "report.json").read_text()) for d in (out, reference))
    mine, theirs = ({k: v for k, v in r["verification"].items() if k != "model"} for r in (report, ref_report))
    assert mine == theirs and mine["overall"]["n"] > 0  # "model" names each run's own adapter path
    assert not [p.name for p in out.rglob(".*") if p.name not in (".lock", ".tuneshift")]


def test_a_second_run_on_a_directory_in_use_is_refused(tiny, tmp_path):
    """A real run holds the lock (stopped mid-answer); a second one exits 2 naming it; the first goes on."""
    out = tmp_path / "out"
    first = start_run(tiny, out, {"action": "stop", "stage": "answer", "round": 0, "at": "start"})
    try:
        _, status = os.waitpid(first.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), "the first run never stopped"
        second = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **NO_VERIFY), env=ONE_THREAD)
        assert second.returncode == 2
        assert second.stderr.strip().splitlines() == [
            f"error: output {out}: another tuneshift run is using it (pid {first.pid})"]
        assert not (out / "candidates.jsonl").exists()
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert (out / "dataset.jsonl").is_file()


@pytest.mark.parametrize("name, code", [("sigint", 130), ("sigterm", 143)])
def test_a_signal_ends_the_run_resumably_and_the_rerun_equals_an_uninterrupted_run(reference, tiny, tmp_path,
                                                                                    name, code):
    """Ctrl-C or SIGTERM mid-answer: one line, exit 130 / 143, run.json says interrupted; the rerun finishes."""
    out = tmp_path / "out"
    stopped = start_run(tiny, out, {"action": name, "stage": "answer", "round": 1, "at": "progress", "nth": 1})
    _, stderr = stopped.communicate(timeout=300)
    assert stopped.returncode == code, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert lines[-1] == "error: interrupted; rerun the same command to resume" and "Traceback" not in stderr
    assert sum(line.startswith("error:") for line in lines) == 1
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "report.json").exists()
    result = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **NO_VERIFY), env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    for output in OUTPUTS:
        assert (out / output).read_text() == (reference / output).read_text(), output
