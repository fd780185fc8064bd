"""A test plugin that injects one fault at one event of a run, as described by $TS_FAULT (JSON).

    {"action": "kill" | "stop" | "disk_full" | "sigint" | "sigterm", "stage": "answer", "round": 1,
     "at": "start" | "progress" | "end", "nth": 1}

The fault fires at the stage's start, at its nth progress report that advanced (work was done and
cached), or at its end (after the stage's work, before its checkpoint is written). Observer hooks
make the point exact, so the kill-and-resume tests are not a race against a timer.

kill: SIGKILL itself (what `kill -9` or the OOM killer does: no cleanup, no atexit);
stop: SIGSTOP itself (the process keeps its lock until the test continues or kills it);
disk_full: from then on every file the run directory writes fails with ENOSPC;
sigint, sigterm: send itself that signal (Ctrl-C; what `kill` and service managers send).
"""

from __future__ import annotations

import errno
import json
import os
import signal
from types import SimpleNamespace
from typing import Any

import tuneshift

FAULT: dict[str, Any] | None = json.loads(os.environ.get("TS_FAULT") or "null")
_seen = SimpleNamespace(round=None, progress=0)


class _FullDisk:
    """The `os` module as rundir sees it, except that fsync reports a full disk."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fire() -> None:
    action = FAULT["action"]
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action in ("sigint", "sigterm"):
        os.kill(os.getpid(), signal.SIGINT if action == "sigint" else signal.SIGTERM)
    elif action == "disk_full":
        from tuneshift import _rundir as rundir

        rundir.os = _FullDisk()
    else:
        raise ValueError(f"TS_FAULT: unknown action {action!r}")


def _here(stage: str, round_: int | None, at: str) -> bool:
    return (FAULT is not None and FAULT["at"] == at and stage == FAULT["stage"]
            and FAULT.get("round") == round_)


@tuneshift.hookimpl
def on_stage_start(stage, round, total):
    _seen.round = round
    if _here(stage, round, "start"):
        _fire()


@tuneshift.hookimpl
def on_progress(stage, advance):
    if advance > 0 and _here(stage, _seen.round, "progress"):
        _seen.progress += 1
        if _seen.progress == FAULT.get("nth", 1):
            _fire()


@tuneshift.hookimpl
def on_stage_end(stage, round, counts, seconds):
    if _here(stage, round, "end"):
        _fire()
