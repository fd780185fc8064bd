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


def test_each_training_step_is_a_scalar_of_the_run(finished_run):
    logged = scalars(finished_run / "tensorboard")
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_second", "train/epoch"} <= set(logged)
    steps = [step for step, _ in logged["train/loss"]]
    assert steps == list(range(1, len(steps) + 1)) and all(v > 0 for _, v in logged["train/loss"])
    assert logged["train/epoch"][-1][1] == 2  # the tiny config trains 2 epochs


def test_blocked_it_writes_nothing(tiny, tmp_path):
    blocked = tmp_path / "blocked"
    assert run_cli("--no-plugin", "tensorboard", "run", str(TINY / "config.toml"), "--out", str(blocked),
                   *tiny_overrides(tiny, **{"run.rounds": 1, "verify.enabled": False})).returncode == 0
    assert (blocked / "adapter").is_dir() and not (blocked / "tensorboard").exists()
