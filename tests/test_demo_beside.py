"""The demo's second process (tuneshift_demo/beside.py): threads split while it works, failures handed back,
the State crossing to it as the user's choices, and the memory of both processes counted together."""

from __future__ import annotations

import pickle
import subprocess
import sys

from tuneshift._commands.state import State
from tuneshift._registry import Registry


def test_a_state_crosses_to_another_process_as_the_users_choices():
    state = State(Registry(blocked=("tensorboard",)), ["hf-scorer"], debug=True)
    again = pickle.loads(pickle.dumps(state))
    assert again.selected == ["hf-scorer"] and again.debug is True and again.registry is not state.registry
    assert again.registry.blocked == {"tensorboard"}
    assert again.implementation("scorer").name == state.implementation("scorer").name
    quiet = state.without("progress")
    assert quiet.registry.blocked == {"tensorboard", "progress"} and state.registry.blocked == {"tensorboard"}
    assert "progress" not in {name for name, _ in quiet.registry.pm.list_name_plugin()}


def test_a_job_that_fails_beside_comes_back_to_be_run_here(tmp_path):
    """While the process beside lives, this one runs on its share of the threads (a count fixed by the plan,
    not by which finishes first); a failure is reported, not lost; closing gives every thread back."""
    import torch

    from tuneshift_demo.beside import Beside

    threads = torch.get_num_threads()
    ctx = {"out": tmp_path, "settings": {}, "evals": [], "private": [], "inputs": {},
           "state": State(Registry(), [])}
    side = Beside(ctx)
    try:
        assert torch.get_num_threads() == side.mine == max(1, threads // 2)
        job = ("ceiling", 0)  # no target in the inputs: it fails there
        side.submit(job, {})
        assert side.wait(job) is None and "KeyError" in side.failed[job] and job not in side.pending
        assert torch.get_num_threads() == side.mine  # still beside: the share does not follow the clock
    finally:
        side.close()
    assert torch.get_num_threads() == threads
    assert not side.process.is_alive() and side.process.exitcode == 0  # ended by its sentinel
    assert not (tmp_path / "arms" / "ceiling-s0" / "result.json").exists()


def test_a_job_sent_to_a_process_that_ended_is_handed_back(tmp_path):
    import torch

    from tuneshift_demo.beside import Beside

    threads = torch.get_num_threads()
    side = Beside({"out": tmp_path, "state": State(Registry(), [])})
    side.jobs.put(None)  # the process ends at once; a job then submitted is never collected
    side.process.join(timeout=60)
    side.submit(("zero_shot", 0), {})
    assert side.wait(("zero_shot", 0)) is None and side.failed == {("zero_shot", 0): "the process beside ended"}
    side.close()
    assert torch.get_num_threads() == threads and not side.process.is_alive()


def test_peak_memory_counts_a_child_process_too():
    from tuneshift_demo.beside import PeakMemory

    memory = PeakMemory(interval=0.05)
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(400 * 2**20); time.sleep(3)"])
    child.wait(timeout=60)  # it holds its 400 MB for 3 s: the sampler sees it many times
    assert memory.stop() >= 400  # the child's 400 MB and this process's own
    assert memory.at_peak["children_mb"] >= 400 and memory.at_peak["main_mb"] > 0 and memory.at_peak["seconds"] > 0


def test_the_trainings_beside_recompute_activations_and_leave_the_main_settings_alone():
    """Beside the teacher, memory is short and time is not: its trainings turn on gradient checkpointing
    (the same adapter, tests/test_trainer_recipe.py); the main process's settings stay as they were."""
    from tuneshift_demo.beside import recomputing
    from tuneshift_demo.run import SETTINGS

    ctx = {"settings": SETTINGS["quick"], "out": None}
    beside = recomputing(ctx)
    assert beside["settings"]["trainer"] == {**SETTINGS["quick"]["trainer"], "gradient_checkpointing": True}
    assert "gradient_checkpointing" not in SETTINGS["quick"]["trainer"] and ctx["settings"] is SETTINGS["quick"]
