"""A second process that runs the arms needing no teacher while the teacher trains, the CPU threads split.

On 2 cores one training runs only about 1.4x as fast on two threads as on one (docs/demo.md), so two
trainings side by side, one thread each, end sooner than one after the other. The target's zero_shot
and ceiling arms (first seed) need no teacher, so they run in a second process during the teacher
stage. Each thread count is fixed by the plan, never by which process finishes first: how many
threads a training gets changes the order of its floating-point sums, and with it the trained model,
so a count that followed the clock would make two cold runs on one machine differ. Each job writes
what the arm writes in the main process (its result.json), so the main process finds the arm done. A
job that failed there runs again in the main process, where its error is reported as any other
stage's. Its trainings recompute activations in the backward pass (`gradient_checkpointing`): the
same adapter, bitwise, in less memory, so the two processes together stay under 8 GB.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

Job = tuple[str, int]
"""(arm, seed)."""


def serve(jobs: Any, done: Any, ctx: dict[str, Any], threads: int) -> None:
    """The second process: run each (job, inputs) from `jobs` until None; report (job, seconds or None,
    error) on `done`."""
    import warnings

    import torch
    from transformers.utils import logging as transformers_logging

    from .arms import run_arm
    from .run import release_models

    warnings.simplefilter("ignore")  # quiet as `tuneshift -q`: what matters comes back to the main process
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    ctx = {**ctx, "progress": lambda n: None}
    try:
        while (message := jobs.get()) is not None:
            (arm, seed), inputs = message
            begun = time.time()
            try:
                run_arm(arm, seed, {**recomputing(ctx), "inputs": inputs})
                done.put(((arm, seed), round(time.time() - begun, 1), None))
            except Exception as exc:  # the main process runs it again and reports it there
                done.put(((arm, seed), None, f"{type(exc).__name__}: {exc}"))
            release_models()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the main process says so
        pass


def recomputing(ctx: dict[str, Any]) -> dict[str, Any]:
    """`ctx` with its trainer recomputing activations in the backward pass: the same adapter in less memory,
    and the teacher beside takes longer than these trainings anyway (docs/demo.md, "Two processes")."""
    settings = ctx["settings"]
    return {**ctx, "settings": {**settings, "trainer": {**settings["trainer"], "gradient_checkpointing": True}}}


class Beside:
    """The second process and its jobs; while it lives, this process runs on its share of the threads."""

    def __init__(self, ctx: dict[str, Any]) -> None:
        import multiprocessing

        import torch

        self.threads = torch.get_num_threads()
        self.mine = max(1, self.threads // 2)
        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        self.jobs, self.done = spawn.Queue(), spawn.Queue()
        portable = {k: v for k, v in ctx.items() if k != "progress"}
        portable["state"] = ctx["state"].without("progress")  # no second set of progress bars
        self.process = spawn.Process(target=serve, args=(self.jobs, self.done, portable, self.threads - self.mine),
                                     name="tuneshift-demo-beside")
        self.process.start()
        torch.set_num_threads(self.mine)
        self.pending: set[Job] = set()
        self.seconds: dict[Job, float] = {}
        self.failed: dict[Job, str] = {}

    def submit(self, job: Job, inputs: dict[str, str]) -> None:
        self.pending.add(job)
        self.jobs.put((job, inputs))

    def wait(self, job: Job) -> float | None:
        """Block until `job` ends: its seconds there, or None when it failed (then the caller runs it)."""
        while job in self.pending:
            if not self.process.is_alive() and self.done.empty():
                self.failed.update({j: "the process beside ended" for j in self.pending})
                self.pending.clear()
                break
            try:
                finished, seconds, error = self.done.get(timeout=1.0)
            except queue.Empty:  # look again whether the process is still there
                continue
            self.pending.discard(finished)
            if seconds is not None:
                self.seconds[finished] = seconds
            else:
                self.failed[finished] = error or "failed"
        return self.seconds.get(job)

    def close(self) -> None:
        """Stop the process (at once if jobs are still running: an interrupted demo resumes them) and take
        every thread back."""
        import torch

        if self.process.is_alive():
            if self.pending:
                self.process.terminate()
            else:
                self.jobs.put(None)
            self.process.join(timeout=30)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.pending.clear()
        torch.set_num_threads(self.threads)


class PeakMemory:
    """The peak memory of this process and its children together, sampled from /proc (Linux): with a process
    beside, the larger process's own peak would understate what the demo needs. The sum of resident set
    sizes counts a page both processes share (torch's libraries) twice, so it is an upper bound; the
    exact alternative, Pss from smaps_rollup, costs 28 ms a read for a 5 GB process and holds its
    memory-map lock while it walks (a cold demo sampling it took 6 % longer). Their peaks in two cold
    demos: 8.76 GB Pss, 8.84 GB resident."""

    def __init__(self, interval: float = 0.25) -> None:
        self.peak_mb = 0.0
        self.at_peak: dict[str, float] = {}  # when the peak was (seconds from the start), and each process's part
        self._started = time.time()
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        if os.path.isdir("/proc/self"):
            self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            parts = self.parts_mb()
            if sum(parts) > self.peak_mb:
                self.peak_mb = sum(parts)
                self.at_peak = {"seconds": round(time.time() - self._started, 1), "main_mb": round(parts[0], 1),
                                "children_mb": round(sum(parts[1:]), 1)}

    def parts_mb(self) -> list[float]:
        """This process's memory, then each child's."""
        pids = [str(os.getpid())]
        try:
            with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as fh:
                pids += fh.read().split()
        except OSError:
            pass
        return [self._process_mb(pid) for pid in pids]

    def _process_mb(self, pid: str) -> float:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                return int(fh.read().split()[1]) * self._page / 2**20
        except (OSError, IndexError, ValueError):  # the child just ended
            return 0.0

    def stop(self) -> float:
        self._stop.set()
        return self.peak_mb
