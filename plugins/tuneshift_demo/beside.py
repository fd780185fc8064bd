"""A second process that runs the demo's independent work beside the main one, the CPU threads split.

On 2 cores one training runs only about 1.4x as fast on two threads as on one (docs/performance.md),
so two jobs side by side, one thread each, end sooner than one after the other. The target's zero_shot
and ceiling arms need no teacher: they run while the teacher trains. The no_filter arm's crawl runs
while the tuneshift arm does. Whenever the second process has nothing to do, the main one gets every
thread back. Each job writes what the arm would have written itself (its result.json, its crawl's run
directory), so the main process finds it done. A job that fails there runs again in the main process,
where its error is reported like any other stage's.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

Job = tuple[str, str, int]
"""(kind, arm, seed): kind "arm" runs the whole arm, "crawl" the no_filter arm's crawl."""


def serve(jobs: Any, done: Any, ctx: dict[str, Any], threads: int) -> None:
    """The second process: run each job from `jobs` until None, report (job, seconds or None, error)."""
    import torch

    from .arms import run_arm, unfiltered_pool
    from .run import release_models

    torch.set_num_threads(threads)
    ctx = {**ctx, "progress": lambda n: None}
    try:
        while (message := jobs.get()) is not None:
            (kind, arm, seed), inputs = message
            begun = time.time()
            try:
                if kind == "arm":
                    run_arm(arm, seed, {**ctx, "inputs": inputs})
                else:
                    unfiltered_pool(seed, {**ctx, "inputs": inputs})
                done.put(((kind, arm, seed), round(time.time() - begun, 1), None))
            except Exception as exc:  # the main process runs it again and reports it there
                done.put(((kind, arm, seed), None, f"{type(exc).__name__}: {exc}"))
            release_models()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the main process says so
        pass


class Beside:
    """The second process, its job queue, and the main process's share of the threads."""

    def __init__(self, ctx: dict[str, Any]) -> None:
        import multiprocessing

        import torch

        self.threads = torch.get_num_threads()
        self.mine = max(1, self.threads // 2)  # the main process's share while the other works
        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        self.jobs, self.done = spawn.Queue(), spawn.Queue()
        portable = {k: v for k, v in ctx.items() if k != "progress"}
        portable["state"] = ctx["state"].without("progress")  # no second set of progress bars
        self.process = spawn.Process(target=serve, args=(self.jobs, self.done, portable, self.threads - self.mine),
                                     name="tuneshift-demo-beside")
        self.process.start()
        self.pending: set[Job] = set()
        self.seconds: dict[Job, float] = {}
        self.failed: dict[Job, str] = {}

    def submit(self, job: Job, inputs: dict[str, str]) -> None:
        self.pending.add(job)
        self.jobs.put((job, inputs))
        self._share()

    @staticmethod
    def stage_name(job: Job) -> str:
        """The job's name in report.json's stage_seconds."""
        kind, arm, seed = job
        return f"{arm} seed {seed}" if kind == "arm" else f"{arm} {kind} seed {seed}"

    def has(self, job: Job) -> bool:
        return job in self.pending or job in self.seconds

    def tick(self) -> None:
        """Collect finished jobs without waiting (call it from the main thread: torch's thread count is
        the calling thread's)."""
        while not self.done.empty():
            self._collect(self.done.get())
        self._share()

    def wait(self, job: Job) -> float | None:
        """Block until `job` ends; its seconds there, or None when it failed (then the caller runs it)."""
        while job in self.pending:
            if not self.process.is_alive() and self.done.empty():
                self.failed.update({j: "the process beside ended" for j in self.pending})
                self.pending.clear()
                break
            try:
                self._collect(self.done.get(timeout=1.0))
            except Exception:  # queue.Empty: look again whether the process is still there
                pass
        self._share()
        return self.seconds.get(job)

    def close(self) -> None:
        """Stop the process: at once if jobs are still running (an interrupted demo resumes them)."""
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
        self._share()

    def _collect(self, message: tuple[Job, float | None, str | None]) -> None:
        job, seconds, error = message
        self.pending.discard(job)
        if seconds is not None:
            self.seconds[job] = seconds
        else:
            self.failed[job] = error or "failed"

    def _share(self) -> None:
        import torch

        want = self.mine if self.pending else self.threads
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)


class PeakMemory:
    """The peak of the resident memory of this process and its children together, sampled (Linux /proc):
    with a process beside, the largest single process's peak would understate what the demo needs."""

    def __init__(self, interval: float = 0.25) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        if os.path.isdir("/proc/self"):
            self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak_mb = max(self.peak_mb, self._resident_mb())

    def _resident_mb(self) -> float:
        pids = [str(os.getpid())]
        try:
            with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as fh:
                pids += fh.read().split()
        except OSError:
            pass
        total = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/statm") as fh:
                    total += int(fh.read().split()[1])
            except (OSError, IndexError, ValueError):  # the child just ended
                pass
        return total * self._page / 2**20

    def stop(self) -> float:
        self._stop.set()
        return self.peak_mb
