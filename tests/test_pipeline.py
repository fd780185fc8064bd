"""The tiny example end to end: the run directory of contract.md, resume, kill, lock, cache, observers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY, run_cli, tiny_overrides

CONFIG = str(TINY / "config.toml")


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_run(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    result = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny))
    assert result.returncode == 0, result.stderr
    return out


def test_run_directory_matches_the_contract(finished_run):
    out = finished_run
    for name in ("dataset.jsonl", "candidates.jsonl", "run.json", "report.json", "adapter/adapter_config.json",
                 "config.toml"):
        assert (out / name).exists(), name
    candidates = read_lines(out / "candidates.jsonl")
    dataset = read_lines(out / "dataset.jsonl")
    assert len(candidates) >= 4
    assert [c["id"] for c in candidates] == list(range(len(candidates)))
    assert {c["fate"] for c in candidates} <= {"kept", "duplicate", "below_threshold", "generation_error"}
    for c in candidates:
        assert {"round", "origin", "fate", "prompt"} <= set(c)
        if c["fate"] == "duplicate":
            assert c["dup_of"] and c["reason"].startswith("duplicate of")
        if c["fate"] in ("kept", "below_threshold"):
            assert c["ppl_ratio"] == pytest.approx(2.718281828 ** (c["nll_base"] - c["nll_finetuned"]), rel=1e-6)
    kept = [c for c in candidates if c["fate"] == "kept"]
    assert [d["prompt"] for d in dataset] == [c["prompt"] for c in kept]
    assert all(d["score"] > 1.5 for d in dataset)  # the config's ratio threshold
    assert all({"prompt", "response", "score", "nll_finetuned", "nll_base"} <= set(d) for d in dataset)
    assert {c["origin"] for c in candidates} == {"seed", "self-generate"}
    import tomllib

    snapshot = tomllib.loads((out / "config.toml").read_text())
    assert snapshot["run"]["rounds"] == 2 and snapshot["selector"]["threshold"] == 1.5
    assert Path(snapshot["teacher"]["adapter"]).is_absolute()


def test_run_json_records_provenance(finished_run):
    run = json.loads((finished_run / "run.json").read_text())
    assert run["status"] == "ok"
    assert run["plugins"]["expander"]["name"] == "self-generate"
    assert run["plugins"]["selector"] == {"name": "ppl-ratio", "distribution": "tuneshift", "version": run["tuneshift"]}
    assert run["versions"]["torch"] and run["versions"]["transformers"] and run["versions"]["peft"]
    assert run["seeds"] == {"run.seed": 0}
    # what `precision = "auto"` meant here (tests pin it with $TUNESHIFT_PRECISION)
    assert {run["identities"][k]["precision"] for k in ("answerer", "scorer", "trainer")} == {"float32"}
    assert run["config"]["run"]["max_new_tokens"] == 24  # not mistaken for a secret
    assert any(k.endswith("/answer") for k in run["timings"]) and "train" in run["timings"]
    assert [r["round"] for r in run["rounds"]] == [0, 1, 2]
    assert all(0 <= r["diversity"]["distinct_2"] <= 1 for r in run["rounds"] if r.get("kept"))
    report = json.loads((finished_run / "report.json").read_text())
    assert report["dataset_size"] == len(read_lines(finished_run / "dataset.jsonl"))
    assert report["train"]["pairs"] == report["dataset_size"]
    assert set(report["eval"]) == {"n", "teacher", "target_before", "target_after"}


def test_the_adapter_loads_with_peft(finished_run, tiny):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny["target"])
    model = PeftModel.from_pretrained(base, finished_run / "adapter")
    config = json.loads((finished_run / "adapter" / "adapter_config.json").read_text())
    assert "lm_head" not in config["target_modules"]
    assert any("lora_A" in name for name, _ in model.named_parameters())


def test_rerun_resumes_without_duplicates(finished_run, tiny):
    before = (finished_run / "candidates.jsonl").read_text()
    result = run_cli("run", CONFIG, "--out", str(finished_run), *tiny_overrides(tiny))
    assert result.returncode == 0, result.stderr
    assert (finished_run / "candidates.jsonl").read_text() == before
    run = json.loads((finished_run / "run.json").read_text())
    assert run["cache"]["misses"] == 0  # every stage came from its checkpoint


def test_cache_makes_recomputation_free(finished_run, tiny, tmp_path):
    """With the stage checkpoints gone, the fingerprint cache still answers every model call."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    for round_dir in (copy / "state").glob("round-*"):
        shutil.rmtree(round_dir)
    result = run_cli("run", CONFIG, "--out", str(copy), *tiny_overrides(tiny))
    assert result.returncode == 0, result.stderr
    run = json.loads((copy / "run.json").read_text())
    assert run["cache"]["misses"] == 0 and run["cache"]["hits"] > 0
    assert (copy / "candidates.jsonl").read_text() == (finished_run / "candidates.jsonl").read_text()


def test_changed_config_is_refused_on_the_same_directory(finished_run, tiny):
    result = run_cli("run", CONFIG, "--out", str(finished_run), *tiny_overrides(tiny, **{"selector.threshold": 2.5}))
    assert result.returncode == 2
    assert "another config" in result.stderr


@pytest.mark.parametrize("stage", ["round-001/expand", "round-002/answer", "train"])
def test_kill_and_rerun_equals_an_uninterrupted_run(finished_run, tiny, tmp_path, stage):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", "import sys; from tuneshift._cli import main; sys.exit(main())",
           "run", CONFIG, "--out", str(out), *tiny_overrides(tiny)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = out / "state" / (f"{stage}.json" if "/" in stage else "train" / Path("checkpoint.pt"))
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny))
    assert result.returncode == 0, result.stderr
    for name in ("candidates.jsonl", "dataset.jsonl"):
        assert (out / name).read_text() == (finished_run / name).read_text(), name


def test_a_second_run_on_the_same_directory_is_refused(tiny, tmp_path):
    from tuneshift._rundir import RunDir

    holder = RunDir(tmp_path / "locked").open()
    try:
        result = run_cli("run", CONFIG, "--out", str(tmp_path / "locked"), *tiny_overrides(tiny))
        assert result.returncode == 2
        assert "another tuneshift run is using it" in result.stderr
    finally:
        holder.close()


def test_observer_hooks_see_every_event(tiny, tmp_path):
    events_file = tmp_path / "events.jsonl"
    env = {"TUNESHIFT_PLUGINS": "observer_plugin", "TS_EVENTS": str(events_file),
           "PYTHONPATH": str(ROOT / "tests") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = run_cli("run", CONFIG, "--out", str(tmp_path / "o"), *tiny_overrides(tiny, **{"run.rounds": 1}), env=env)
    assert result.returncode == 0, result.stderr
    events = read_lines(events_file)
    names = [e["event"] for e in events]
    assert names[0] == "on_run_start" and names[-1] == "on_run_end"
    assert events[-1]["status"] == "ok" and events[-1]["error"] is None
    starts = [(e["stage"], e["round"]) for e in events if e["event"] == "on_stage_start"]
    assert ("answer", 0) in starts and ("select", 1) in starts and ("train", None) in starts
    ends = {(e["stage"], e["round"]): e for e in events if e["event"] == "on_stage_end"}
    assert set(ends) == set(starts)
    assert ends[("select", 0)]["counts"].get("kept", 0) + ends[("select", 0)]["counts"].get("below_threshold", 0) > 0
    answered = sum(e["advance"] for e in events if e["event"] == "on_progress" and e["stage"] == "answer")
    assert answered >= 4  # the seeds, at least
    [train] = [e for e in events if e["event"] == "on_stage_start" and e["stage"] == "train"]
    trained = sum(e["advance"] for e in events if e["event"] == "on_progress" and e["stage"] == "train")
    assert train["total"] == trained == 2  # the bar counts the tiny config's epochs, and reaches them
    steps = [e for e in events if e["event"] == "on_metrics"]  # every optimiser step of the trainer
    assert steps and {e["stage"] for e in steps} == {"train"}
    assert [e["step"] for e in steps] == list(range(1, len(steps) + 1))
    assert all(e["metrics"]["loss"] > 0 and e["metrics"]["learning_rate"] > 0 and e["metrics"]["tokens_per_second"] > 0
               for e in steps)
    assert steps[-1]["metrics"]["epoch"] == 2  # the tiny config's epochs


def test_failed_run_reports_on_run_end(tiny, tmp_path):
    events_file = tmp_path / "events.jsonl"
    env = {"TUNESHIFT_PLUGINS": "observer_plugin", "TS_EVENTS": str(events_file),
           "PYTHONPATH": str(ROOT / "tests")}
    # a threshold nothing passes: the trainer has nothing to train on, a run-time failure
    result = run_cli("run", CONFIG, "--out", str(tmp_path / "o"),
                     *tiny_overrides(tiny, **{"run.rounds": 1, "selector.threshold": 1e9}), env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: nothing was kept")
    last = read_lines(events_file)[-1]
    assert last["event"] == "on_run_end" and last["status"] == "failed" and "nothing was kept" in last["error"]
    assert json.loads((tmp_path / "o" / "run.json").read_text())["status"] == "failed"


def test_an_observer_that_raises_is_reported_once_and_the_run_goes_on(tiny, tmp_path):
    events_file, raised = tmp_path / "events.jsonl", tmp_path / "raised.txt"
    env = {"TUNESHIFT_PLUGINS": "raising_observer,observer_plugin", "TS_EVENTS": str(events_file),
           "TS_RAISED": str(raised), "PYTHONPATH": str(ROOT / "tests")}
    result = run_cli("run", CONFIG, "--out", str(tmp_path / "o"), *tiny_overrides(tiny, **{"run.rounds": 1}), env=env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "raising_observer" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: plugin raising_observer: on_stage_start failed")
    assert "the logger's disk is full" in warnings[0]
    assert raised.read_text().splitlines() == ["round"]  # called once, then left out
    events = read_lines(events_file)  # the other observer heard everything
    assert events[-1]["event"] == "on_run_end" and events[-1]["status"] == "ok"
    assert json.loads((tmp_path / "o" / "run.json").read_text())["status"] == "ok"
