"""Merge concurrent requests into shared forward passes, as a serving engine does.

Requests hand their rows to one worker thread (the model is not thread safe
and two cores gain nothing from parallel passes); the worker waits a few
milliseconds for more work, then runs everything pending as few batches as
the token budget allows: one-token rows (scoring, `max_tokens` <= 1) all
together, longer generations grouped by their sampling settings.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tuneshift_hf.shared import plan_batches

from .engine import Completion, Engine, Row


@dataclass
class Job:
    rows: list[Row]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    results: list[Completion | None] = field(default_factory=list)


@dataclass
class Stats:
    requests: int = 0
    batches: int = 0
    rows: int = 0


class MicroBatcher:
    def __init__(self, engine: Engine, wait_s: float = 0.01, max_rows: int = 32, max_tokens: int = 4096) -> None:
        self.engine, self.wait_s, self.max_rows, self.max_tokens = engine, wait_s, max_rows, max_tokens
        self.stats = Stats()
        self._queue: queue.Queue[Job] = queue.Queue()
        threading.Thread(target=self._work, name="tuneshift-serve-batcher", daemon=True).start()

    async def run(self, rows: list[Row]) -> list[Completion]:
        self.engine.check(rows)
        loop = asyncio.get_running_loop()
        job = Job(rows, loop, loop.create_future(), [None] * len(rows))
        self._queue.put(job)
        return await job.future

    def _take(self) -> list[Job]:
        jobs = [self._queue.get()]
        deadline = time.monotonic() + self.wait_s
        while sum(len(j.rows) for j in jobs) < self.max_rows:
            try:
                jobs.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return jobs

    def _work(self) -> None:
        while True:
            jobs = self._take()
            groups: dict[Any, list[tuple[Job, int]]] = {}
            for job in jobs:
                for i, row in enumerate(job.rows):
                    key = "forward" if row.sampling.max_new_tokens <= 1 else row.sampling
                    groups.setdefault(key, []).append((job, i))
            failed: dict[int, BaseException] = {}
            for key, members in groups.items():
                members = [m for m in members if id(m[0]) not in failed]
                try:
                    self._run_group(key, members)
                except Exception as exc:  # reported to the requests that share the batch
                    for job, _ in members:
                        failed[id(job)] = exc
            self.stats.requests += len(jobs)
            for job in jobs:
                error = failed.get(id(job))
                job.loop.call_soon_threadsafe(_settle, job.future, error, job.results)

    def _run_group(self, key: Any, members: list[tuple[Job, int]]) -> None:
        rows = [job.rows[i] for job, i in members]
        lengths = [len(r.ids) + r.sampling.max_new_tokens for r in rows]
        for batch in plan_batches(lengths, self.max_rows, self.max_tokens):
            run = self.engine.forward if key == "forward" else self.engine.generate
            for k, completion in zip(batch, run([rows[k] for k in batch])):
                job, i = members[k]
                job.results[i] = completion
            self.stats.batches += 1
            self.stats.rows += len(batch)


def _settle(future: asyncio.Future, error: BaseException | None, results: list) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(results)
