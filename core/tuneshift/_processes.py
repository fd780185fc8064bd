"""Which process this is under torchrun / `accelerate launch` (or an MPI launcher), read from the environment."""

from __future__ import annotations

import os

from tuneshift._errors import UsageError

RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
WORLD_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
"""What torchrun / accelerate launch (and MPI launchers) set in each process."""


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return default


def world_size() -> int:
    """How many processes the launcher started (1 without a launcher)."""
    return _first_int(WORLD_VARIABLES, 1)


def is_main_process() -> bool:
    """Whether this is rank 0, the process that writes files and prints."""
    return _first_int(RANK_VARIABLES, 0) == 0


def refuse_multi_process(command: str) -> None:
    """The pipeline runs in one process: N copies would race on one run directory."""
    if world_size() > 1:
        raise UsageError(f"tuneshift {command} runs in one process, not {world_size()}; to train on several "
                         "GPUs: tuneshift run CONFIG --out DIR --set target.train=false, "
                         "then accelerate launch -m tuneshift train DIR")
