"""The built-in tensorboard observer: a run's training steps as TensorBoard scalars in RUN_DIR/tensorboard."""

from __future__ import annotations

import pytest
from conftest import TINY, run_cli, tiny_overrides

pytest.importorskip("tensorboard")


def scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_each_training_step_is_a_scalar_of_the_run(tiny, tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 1, "verify.enabled": False}))
    assert result.returncode == 0, result.stderr[-2000:]
    logged = scalars(out / "tensorboard")
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_second", "train/epoch"} <= set(logged)
    steps = [step for step, _ in logged["train/loss"]]
    assert steps == list(range(1, len(steps) + 1)) and all(v > 0 for _, v in logged["train/loss"])
    assert logged["train/epoch"][-1][1] == 2  # the tiny config trains 2 epochs


def test_blocked_or_without_training_it_writes_nothing(tiny, tmp_path):
    blocked, untrained = tmp_path / "blocked", tmp_path / "untrained"
    assert run_cli("--no-plugin", "tensorboard", "run", str(TINY / "config.toml"), "--out", str(blocked),
                   *tiny_overrides(tiny, **{"run.rounds": 1, "verify.enabled": False})).returncode == 0
    assert run_cli("run", str(TINY / "config.toml"), "--out", str(untrained),
                   *tiny_overrides(tiny, **{"run.rounds": 1, "target.train": False})).returncode == 0
    assert not (blocked / "tensorboard").exists() and not (untrained / "tensorboard").exists()
