"""A test plugin whose observer raises on its first event; it counts its calls in $TS_RAISED."""

import os

from tuneshift.api import hookimpl


@hookimpl
def on_stage_start(stage, round, total):
    with open(os.environ["TS_RAISED"], "a") as fh:
        fh.write(f"{stage}\n")
    raise RuntimeError("the logger's disk is full")
