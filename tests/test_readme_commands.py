"""The commands as users type them: relative paths, other working directories, `make demo` itself.

Every measured demo once passed an absolute --out, so nobody saw `make demo` (no --out: the
relative runs/demo) fail 14 minutes in. These tests run from scratch working directories with
relative paths only; the demo runs on the tiny models through $TUNESHIFT_DEMO_SCALE, with the
real CLI, path handling and make target.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY

SCALE = {
    "teacher_recipe": {"rank": 8, "alpha": 16, "dropout": 0.0, "learning_rate": 1e-2, "epochs": 30,
                       "batch_size": 16, "replay_copies": 1, "max_new_tokens": 24},
    "settings": {"seeds": [0], "run": {"rounds": 1, "per_round": 4, "max_new_tokens": 16, "batch_size": 16},
                 "deduper": {"threshold": 0.97}, "selector": {"use": "ppl-ratio", "threshold": 1.5},
                 "selection_arms": False,
                 "trainer": {"rank": 4, "alpha": 8, "dropout": 0.0, "learning_rate": 5e-3, "epochs": 1,
                             "batch_size": 16}},
    "domain_size": {"departments": 1, "people_per_department": 2, "projects_per_department": 1},
}


def shell(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900):
    # under `make test` (CI) the outer make's flags would make this one a sub-make ("Entering directory")
    outer = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**outer, **(env or {})})


@pytest.fixture(scope="module")
def scale(tiny, tmp_path_factory) -> dict[str, str]:
    """The environment that shrinks the demo to the tiny models; one teacher cache for the module."""
    folder = tmp_path_factory.mktemp("scale")
    path = folder / "scale.json"
    models = {"teacher_base": str(tiny["teacher_base"]), "target": str(tiny["target"])}
    path.write_text(json.dumps({**SCALE, "models": models}))
    return {"TUNESHIFT_DEMO_SCALE": str(path), "TUNESHIFT_CACHE": str(folder / "cache")}


def assert_demo_finished(out: Path, stderr: str) -> None:
    report = json.loads((out / "report.json").read_text())
    assert set(report["arms"]) == {"zero_shot", "ceiling", "tuneshift", "no_filter", "seeds_only"}
    assert report["arms"]["tuneshift"]["dataset_size"] > 0
    assert "held-out accuracy" in stderr and "| tuneshift |" in (out / "report.md").read_text()
    config = (out / "arms" / "tuneshift-s0" / "config.toml").read_text()
    assert str(out / "inputs" / "seeds.jsonl") in config  # written absolute, so it reads back from the arm


def make_layout(tmp: Path) -> Path:
    """A checkout as `make demo` sees it: the real Makefile and pyproject.toml, an installed .venv.

    .venv/bin/tuneshift starts this interpreter's tuneshift, and the install stamp is fresh, so make
    runs the demo target's own command line (`.venv/bin/tuneshift demo`) and installs nothing.
    """
    clone = tmp / "clone"
    (clone / ".venv" / "bin").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml"):
        (clone / name).symlink_to(ROOT / name)
    script = clone / ".venv" / "bin" / "tuneshift"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tuneshift "$@"\n')
    script.chmod(0o755)
    (clone / ".venv" / ".tuneshift-installed").touch()
    return clone


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_as_the_readme_says(scale, tmp_path):
    clone = make_layout(tmp_path)
    dry = shell(["make", "-n", "demo"], clone)
    assert dry.returncode == 0 and dry.stdout.strip() == ".venv/bin/tuneshift demo"  # nothing to install
    done = shell(["make", "demo"], clone, scale)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_demo_finished(clone / "runs" / "demo", done.stderr)


def test_demo_with_a_relative_out_from_another_directory(scale, tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    done = shell([sys.executable, "-m", "tuneshift", "demo", "--serial", "--out", "results/../demo-out"], cwd, scale)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_demo_finished(cwd / "demo-out", done.stderr)
    assert json.loads((cwd / "demo-out" / "report.json").read_text())["beside"] is None  # --serial: one process


def test_demo_refuses_bad_settings_before_its_first_model_call(scale, tmp_path):
    """A selector that does not exist costs seconds: no teacher is trained, no arm is started."""
    bad = json.loads(Path(scale["TUNESHIFT_DEMO_SCALE"]).read_text())
    bad["settings"]["selector"] = {"use": "no-such-selector"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    cache = tmp_path / "cache"
    started = time.time()
    done = shell([sys.executable, "-m", "tuneshift", "demo", "--out", "out"], tmp_path,
                 {"TUNESHIFT_DEMO_SCALE": str(path), "TUNESHIFT_CACHE": str(cache)})
    assert done.returncode == 2 and done.stderr.count("error:") == 1 and "no-such-selector" in done.stderr
    assert time.time() - started < 60
    assert not cache.exists() and not (tmp_path / "out" / "arms" / "zero_shot-s0").exists()


def test_demo_refuses_an_output_that_is_a_file(scale, tmp_path):
    (tmp_path / "taken").write_text("a user's file\n")
    done = shell([sys.executable, "-m", "tuneshift", "demo", "--out", "taken"], tmp_path, scale)
    assert done.returncode == 2 and "exists and is not a directory" in done.stderr
    assert (tmp_path / "taken").read_text() == "a user's file\n"


def test_run_train_verify_with_relative_paths_from_another_directory(tiny, tmp_path):
    """A project folder with its config beside its models; the commands typed from elsewhere."""
    project, cwd = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    cwd.mkdir()
    (project / "models").symlink_to(tiny["dir"])
    shutil.copy(TINY / "config.toml", project / "config.toml")
    (cwd / "my-seeds.jsonl").write_text((tiny["seeds"]).read_text())  # --set paths are relative to the cwd
    tuneshift = [sys.executable, "-m", "tuneshift"]
    done = shell(tuneshift + ["run", "../project/config.toml", "--out", "out/tiny",
                              "--set", "seeds.path=my-seeds.jsonl", "--set", "verify.enabled=false"], cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    run = cwd / "out" / "tiny"
    assert (run / "dataset.jsonl").stat().st_size > 0 and (run / "adapter" / "adapter_config.json").is_file()
    resolved = json.loads((run / "run.json").read_text())["config"]
    assert resolved["seeds"]["path"] == str(cwd / "my-seeds.jsonl")
    assert resolved["teacher"]["base"] == str((project / "models" / "teacher-base").resolve())
    again = shell(tuneshift + ["train", "out/tiny", "--out", "out/adapter-again"], cwd)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (cwd / "out" / "adapter-again" / "adapter_config.json").is_file()
    checked = shell(tuneshift + ["verify", "out/tiny"], cwd)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert (run / "verification.jsonl").is_file()


def test_the_tiny_example_script_as_written(tmp_path):
    """examples/tiny/run.sh from a scratch directory: builds the models once, runs into runs/tiny."""
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if shutil.which("tuneshift", path=env["PATH"]) is None:
        pytest.skip("the tuneshift console script is not installed beside this interpreter")
    done = shell(["bash", str(TINY / "run.sh")], tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "runs" / "tiny" / "dataset.jsonl").stat().st_size > 0
    assert (tmp_path / "runs" / "tiny" / "adapter" / "adapter_config.json").is_file()


def test_demo_refuses_a_folder_with_a_users_files(scale, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "report.md").write_text("my own report\n")
    done = shell([sys.executable, "-m", "tuneshift", "demo", "--out", "."], project, scale)
    assert done.returncode == 2 and "did not write" in done.stderr and done.stderr.count("error:") == 1
    assert [p.name for p in project.iterdir()] == ["report.md"]


def test_demo_runs_every_stage_with_the_plugins_chosen(scale, tmp_path):
    """`--plugin` reaches all of the demo (teacher checks, the arms' runs, evaluation), as it does `tuneshift run`;
    `--no-plugin` of what the demo needs is one line before any work."""
    env = {**scale, "TUNESHIFT_CACHE": str(tmp_path / "cache"),  # a teacher of its own: checked by this answerer
           "TUNESHIFT_PLUGINS": "kinds_plugin", "PYTHONPATH": str(ROOT / "tests")}
    done = shell([sys.executable, "-m", "tuneshift", "--plugin", "shouting-answerer", "demo", "--out", "out"],
                 tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    shouted = lambda texts: [t for t in texts if t] and all(t == t.upper() for t in texts if t)  # noqa: E731
    teacher = json.loads((out / "teacher.json").read_text())
    assert shouted([e["teacher"] for e in teacher["general_examples"]] + [e["base"] for e in teacher["general_examples"]])
    assert shouted(json.loads((out / "arms" / "zero_shot-s0" / "result.json").read_text())["answers"])
    run = json.loads((out / "arms" / "tuneshift-s0" / "run" / "run.json").read_text())
    assert run["plugins"]["answerer"]["name"] == "shouting-answerer"

    started = time.time()
    blocked = shell([sys.executable, "-m", "tuneshift", "--no-plugin", "hf", "demo", "--out", "blocked"], tmp_path,
                    {**scale, "TUNESHIFT_CACHE": str(tmp_path / "cache2")})
    assert blocked.returncode == 2 and blocked.stderr.count("error:") == 1, blocked.stderr[-2000:]
    assert "no usable answerer" in blocked.stderr
    assert time.time() - started < 60 and not (tmp_path / "cache2").exists()
