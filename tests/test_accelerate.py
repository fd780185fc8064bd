"""`tuneshift train RUN_DIR`, alone and under `accelerate launch` with two CPU processes (gloo).

The meaningful check: data-parallel training (each process its rows of every
batch, gradients all-reduced) gives the adapter one process gives with the same
global batch size and seed, to float rounding; and it resumes from its checkpoints.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
import torch
from conftest import ROOT, TINY, run_cli, tiny_overrides
from safetensors.torch import load_file

from tuneshift._rundir import mark

sys.path.insert(0, str(TINY))
from facts import FACTS  # noqa: E402

# 9 pairs in batches of 4: batches of 4, 4 and 1 rows, so one process gets no row of the last batch;
# 2 accumulation steps: a step after two batches and one after the epoch's last, incomplete accumulation
TRAINER = {"epochs": 2, "batch_size": 4, "grad_accumulation": 2, "rank": 4, "alpha": 8, "dropout": 0.0,
           "learning_rate": 1e-2, "seed": 3}
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # two processes share the CPU cores


def make_run_dir(tiny: dict[str, Path], path: Path) -> Path:
    """What `tuneshift run ... --set target.train=false` leaves: the resolved config, dataset.jsonl, the marker."""
    path.mkdir(parents=True)
    config = {"run": {"seed": 0},
              "teacher": {"base": str(tiny["teacher_base"]), "adapter": str(tiny["adapter"])},
              "target": {"model": str(tiny["target"]), "train": False},
              "seeds": {"path": str(tiny["seeds"])},
              "trainer": TRAINER}
    (path / "config.toml").write_text(tomli_w.dumps(config))
    (path / "dataset.jsonl").write_text("".join(json.dumps({"prompt": q, "response": a, "score": 2.0}) + "\n"
                                                for q, a in FACTS[:9]))
    mark(path, "run")  # as `tuneshift run` marks the directories it makes
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_train(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes 2 -m tuneshift train RUN_DIR`: torchrun-style
    processes; without CUDA the trainer asks accelerate for CPU, hence gloo. (`--cpu` would start one
    process: accelerate's CPU launcher needs mpirun for several.)"""
    accelerate = Path(sys.executable).parent / "accelerate"
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               "-m", "tuneshift", "train", str(run_dir), *args]
    env = {**os.environ, **ONE_THREAD, "HF_HOME": str(run_dir.parent / "hf-home")}  # no user accelerate config
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=240, cwd=ROOT)


def done(run_dir: Path) -> dict:
    return json.loads((run_dir / "state" / "train.done.json").read_text())


def test_two_processes_train_the_adapter_of_one(tiny, tmp_path):
    single = make_run_dir(tiny, tmp_path / "single")
    multi = shutil.copytree(single, tmp_path / "multi")

    result = run_cli("train", str(single), env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    assert f"adapter in {single / 'adapter'}" in result.stderr
    assert done(single)["processes"] == 1 and done(single)["pairs"] == 9

    first = accelerate_train(multi, "--set", "trainer.epochs=1")  # then resume to 2 epochs
    assert first.returncode == 0, first.stderr[-3000:]
    assert done(multi)["processes"] == 2 and done(multi)["resumed_from_epoch"] == 0
    resumed = accelerate_train(multi)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("trained the target on 9 pairs") == 1  # the main process reports
    metrics = done(multi)
    assert metrics["processes"] == 2 and metrics["resumed_from_epoch"] == 1
    assert metrics["loss_per_epoch"] == pytest.approx(done(single)["loss_per_epoch"], rel=1e-5)

    a = load_file(str(single / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(multi / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and a
    # lora_B starts at zero: training moved it far more than the tolerance
    assert max(a[k].abs().max().item() for k in a if "lora_B" in k) > 1e-2
    difference = max((a[k] - b[k]).abs().max().item() for k in a)
    assert difference < 1e-4, difference
    assert sorted(p.name for p in multi.iterdir() if p.name.startswith(".adapter")) == []  # no staging left

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny["target"]), str(multi / "adapter"))
    assert any("lora_A" in name for name, _ in model.named_parameters())
    lora_b = next(v for k, v in model.state_dict().items() if "lora_B" in k)
    assert torch.count_nonzero(lora_b) > 0


def test_run_refuses_several_processes_and_names_the_recipe():
    result = run_cli("run", str(TINY / "config.toml"), env={"WORLD_SIZE": "2"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tuneshift run runs in one process")
    assert "target.train=false" in lines[0] and "accelerate launch -m tuneshift train" in lines[0]


def test_train_needs_a_run_directory_with_a_dataset(tiny, tmp_path):
    result = run_cli("train", str(tmp_path))
    assert result.returncode == 2 and "no config.toml" in result.stderr
    run_dir = make_run_dir(tiny, tmp_path / "run")
    (run_dir / "dataset.jsonl").write_text("")
    result = run_cli("train", str(run_dir))
    assert result.returncode == 2 and "empty" in result.stderr.strip().splitlines()[-1]
    assert not (run_dir / "adapter").exists()


def test_stray_world_size_without_a_launcher_is_one_line(tiny, tmp_path):
    run_dir = make_run_dir(tiny, tmp_path / "run")
    env = {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": ""}
    result = run_cli("train", str(run_dir), env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-1500:]
    assert "MASTER_ADDR is not set" in lines[0] and "accelerate launch" in lines[0]
    assert not (run_dir / "adapter").exists()


def test_two_step_recipe_reports_and_evaluates_the_adapter(tiny, tmp_path):
    """run with training off, train (here in one process), rerun: the report has both."""
    out = tmp_path / "run"
    run = ("run", str(TINY / "config.toml"), "--out", str(out), *tiny_overrides(tiny), "--set", "target.train=false")
    first = run_cli(*run)
    assert first.returncode == 0, first.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["train"] is None and "target_after" not in report["eval"] and not (out / "adapter").exists()

    trained = run_cli("train", str(out))
    assert trained.returncode == 0, trained.stderr
    again = run_cli(*run)
    assert again.returncode == 0, again.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["train"]["pairs"] == report["dataset_size"] and report["train"]["processes"] == 1
    assert "target_after" in report["eval"]
