"""Never lose a user's files, never return stale results (issue 15).

Output ownership: tuneshift writes only into a directory that is new, empty or marked as its own.
Fingerprints of inputs: a run directory resumes only the run of the same seeds and model files.
Agreement: after extending or shrinking a finished run, adapter, dataset.jsonl and report.json
describe the same pairs. Failures that fail: a diverged training is exit 1, never a NaN adapter.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import TINY, one_error_line, run_cli, tiny_overrides

CONFIG = str(TINY / "config.toml")
FAST = {"verify.enabled": False}


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the hash of its bytes (what "unchanged" means here)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def plant(folder: Path) -> dict[str, str]:
    """A user's project folder: a commented config, their own dataset and adapter."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text("# my notes, keep them\n[run]\nseed = 1\n")
    (folder / "dataset.jsonl").write_text('{"prompt": "mine", "response": "mine"}\n')
    (folder / "adapter").mkdir(exist_ok=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}\n")
    return snapshot(folder)


@pytest.fixture(scope="module")
def finished(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **FAST))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def run_in(cwd: Path, *args: str):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "tuneshift", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=os.environ.copy())


@pytest.mark.parametrize("where", ["a user's folder", "the current directory", "an empty string"])
def test_run_refuses_an_output_it_does_not_own(tiny, tmp_path, where):
    project = tmp_path / "project"
    before = plant(project)
    out = {"a user's folder": str(project), "the current directory": ".", "an empty string": ""}[where]
    result = run_in(project, "run", CONFIG, "--out", out, *tiny_overrides(tiny, **FAST))
    message = one_error_line(result, alone=False)
    assert ("empty path" in message) if where == "an empty string" else ("did not write" in message)
    assert snapshot(project) == before


def test_a_new_or_empty_output_is_claimed_and_marked(tiny, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("run", CONFIG, "--out", str(tmp_path / "empty"), *tiny_overrides(tiny, **FAST))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "empty" / ".tuneshift").read_text())["kind"] == "run"


@pytest.mark.parametrize("where", ["the current directory", "the run directory", "an input model",
                                   "a user's folder", "a file"])
def test_train_out_never_overwrites_what_it_did_not_write(finished, tiny, tmp_path, where):
    project = tmp_path / "project"
    plant(project)
    (project / "notes.txt").write_text("mine\n")
    before, models = snapshot(project), snapshot(tiny["dir"])
    run_before = snapshot(finished)
    out = {"the current directory": ".", "the run directory": str(finished), "an input model": str(tiny["adapter"]),
           "a user's folder": str(project / "adapter"), "a file": str(project / "notes.txt")}[where]
    result = run_in(project, "train", str(finished), "--out", out)
    one_error_line(result, alone=False)
    assert snapshot(project) == before
    assert snapshot(tiny["dir"]) == models and snapshot(finished) == run_before


def test_train_out_replaces_only_its_own_previous_output(finished, tmp_path):
    out = tmp_path / "adapters" / "mine"
    for _ in range(2):  # the second time over its own output: replaced in place
        result = run_cli("train", str(finished), "--out", str(out))
        assert result.returncode == 0, result.stderr[-3000:]
        marker = json.loads((out / ".tuneshift").read_text())
        assert marker["kind"] == "adapter" and (out / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["mine"]  # no staging or old copy left


def _edit_seeds(path: Path) -> None:
    path.write_text(path.read_text() + json.dumps({"prompt": "A seed added in place?"}) + "\n")


def _retrain_adapter(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(str(path / "adapter_model.safetensors"))
    save_file({k: v * 1.5 for k, v in weights.items()}, str(path / "adapter_model.safetensors"))


@pytest.mark.parametrize("key, change, named", [("seeds.path", _edit_seeds, "other seeds"),
                                                ("teacher.adapter", _retrain_adapter, "other teacher.adapter files")])
def test_an_input_changed_in_place_is_not_resumed_with_old_results(tiny, tmp_path, key, change, named):
    """The seeds edited, or the teacher's LoRA retrained, under the same path: refused by name."""
    source = tiny["seeds"] if key == "seeds.path" else tiny["adapter"]
    copy = tmp_path / source.name
    (shutil.copy if source.is_file() else shutil.copytree)(source, copy)
    out = tmp_path / "run"
    args = ["run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **FAST, **{key: str(copy)})]
    assert run_cli(*args).returncode == 0
    dataset = (out / "dataset.jsonl").read_text()
    change(copy)
    assert named in one_error_line(run_cli(*args), alone=False)
    assert (out / "dataset.jsonl").read_text() == dataset


def assert_agree(out: Path) -> None:
    """adapter, dataset.jsonl and report.json describe the same pairs."""
    from tuneshift._cache import fingerprint
    from tuneshift._commands.train import load_pairs

    report = json.loads((out / "report.json").read_text())
    rows = (out / "dataset.jsonl").read_text().splitlines()
    assert report["dataset_size"] == len(rows) == report["train"]["pairs"]
    key = fingerprint(load_pairs(out / "dataset.jsonl"))
    assert report["train"]["pairs_fingerprint"] == key
    assert json.loads((out / "adapter" / ".tuneshift").read_text())["pairs_fingerprint"] == key


def test_extending_and_shrinking_a_finished_run_retrains_on_the_dataset_it_has(tiny, tmp_path):
    out = tmp_path / "run"
    sizes = []
    for rounds in (1, 2, 1):
        result = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **FAST, **{"run.rounds": rounds}))
        assert result.returncode == 0, result.stderr[-3000:]
        assert_agree(out)
        sizes.append(json.loads((out / "report.json").read_text())["dataset_size"])
    assert sizes[0] == sizes[2] < sizes[1]  # the dataset really changed, and the adapter followed it


def test_a_diverged_training_fails_and_leaves_no_nan_adapter(tiny, tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **FAST, **{"trainer.learning_rate": 1e30}))
    message = one_error_line(result, code=1, alone=False)
    assert "training diverged" in message and "trainer.learning_rate = 1e+30" in message
    assert not (out / "adapter").exists() and not (out / "report.json").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert (out / "dataset.jsonl").stat().st_size > 0  # the rounds done stay on disk


def test_json_on_disk_is_strict(tmp_path):
    from tuneshift._errors import RunError
    from tuneshift._rundir import write_json, write_jsonl

    for write, value in ((write_json, {"loss": float("nan")}), (write_jsonl, [{"x": float("inf")}])):
        with pytest.raises(RunError, match="NaN or infinite"):
            write(tmp_path / "out.json", value)
    assert not list(tmp_path.iterdir())


def test_verify_refuses_a_folder_that_only_looks_like_a_run(finished, tmp_path):
    """A copy of a run's files without tuneshift's marker (a user's folder): verify writes nothing there."""
    copy = tmp_path / "looks-like-a-run"
    shutil.copytree(finished, copy)
    (copy / ".tuneshift").unlink()
    (copy / "state" / "job.json").unlink()
    before = snapshot(copy)
    result = run_cli("verify", str(copy))
    assert "did not write" in one_error_line(result, alone=False)
    assert snapshot(copy) == before


def test_new_plugin_never_touches_a_users_folder(tmp_path):
    """new-plugin refuses an existing target and stages in a folder of its own, so nothing else is removed."""
    mine = tmp_path / ".tuneshift-mine.partial"  # the name its staging folder once had
    mine.mkdir()
    (mine / "keep.txt").write_text("mine\n")
    (tmp_path / "tuneshift-taken").mkdir()
    (tmp_path / "tuneshift-taken" / "keep.txt").write_text("mine\n")
    taken = run_cli("new-plugin", "taken", "--out", str(tmp_path))
    assert "already exists" in one_error_line(taken, alone=False)
    made = run_cli("new-plugin", "mine", "--out", str(tmp_path))
    assert made.returncode == 0, made.stderr[-2000:]
    assert (tmp_path / "tuneshift-mine" / "pyproject.toml").is_file()
    assert (mine / "keep.txt").read_text() == "mine\n" and (tmp_path / "tuneshift-taken" / "keep.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tuneshift-mine.partial", "tuneshift-mine",
                                                         "tuneshift-taken"]
