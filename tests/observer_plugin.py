"""A test plugin that records every observer event into the file named by $TS_EVENTS."""

import json
import os

import tuneshift


def _log(event, **fields):
    with open(os.environ["TS_EVENTS"], "a") as fh:
        fh.write(json.dumps({"event": event, **{k: str(v) if k == "out_dir" else v for k, v in fields.items()}}) + "\n")


@tuneshift.hookimpl
def on_run_start(out_dir, config):
    _log("on_run_start", out_dir=out_dir, has_config=isinstance(config, dict))


@tuneshift.hookimpl
def on_stage_start(stage, round, total):
    _log("on_stage_start", stage=stage, round=round, total=total)


@tuneshift.hookimpl
def on_progress(stage, advance):
    _log("on_progress", stage=stage, advance=advance)


@tuneshift.hookimpl
def on_stage_end(stage, round, counts, seconds):
    _log("on_stage_end", stage=stage, round=round, counts=counts, seconds=seconds)


@tuneshift.hookimpl
def on_metrics(stage, step, metrics):
    _log("on_metrics", stage=stage, step=step, metrics=metrics)


@tuneshift.hookimpl
def on_run_end(out_dir, status, error):
    _log("on_run_end", out_dir=out_dir, status=status, error=error)
