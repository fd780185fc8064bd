"""Model references: a local directory, a .gguf file, or a Hugging Face hub id (`owner/name[@revision]`).

A hub id is resolved once, before any work, into its snapshot folder in the
Hugging Face cache (`$HF_HOME/hub`, `HF_HUB_OFFLINE` honoured) by
huggingface_hub itself; from there on every stage sees a local directory, and
the run's fingerprints key on the snapshot's commit, not on a moving branch.
The id stays known (`hub_id`) for what leaves the machine: the adapter's
`base_model_name_or_path` and its model card.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from tuneshift._errors import UsageError

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[\w./-]+))?$")
"""owner/name, optionally @branch, @tag or @commit (the hub's own naming rules, loosely)."""
SKIPPED = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "onnx/*",
           "*.gguf", "original/*"]
"""Files a snapshot download leaves out: pickled or other frameworks' weights, which tuneshift never loads."""


def hub_parts(ref: str, folder: Path | None = None) -> tuple[str, str | None] | None:
    """(repo id, revision) when `ref` names a hub model rather than a local path (relative to `folder`, by
    default the current directory), else None. `owner/name` where a folder `owner` exists is a path."""
    here = folder or Path()
    if (not isinstance(ref, str) or ref.startswith((".", "/", "~")) or (here / ref).exists()
            or (here / ref.split("/")[0]).is_dir()):
        return None
    match = HUB_ID.match(ref)
    if match is None or ".." in ref:
        return None
    return match["repo"], match["revision"]


def is_hub_id(ref: str, folder: Path | None = None) -> bool:
    return hub_parts(ref, folder) is not None


def local_model(ref: str, label: str = "model") -> str:
    """A local path for the model reference `ref`: itself, or a hub id's snapshot folder, fetched into the
    Hugging Face cache unless HF_HUB_OFFLINE is set. A UsageError of one line, `label ref: ...`, when it
    cannot be had."""
    if hub_parts(ref) is None:
        return ref
    try:
        return _snapshot(ref)
    except UsageError as exc:
        raise UsageError(f"{label} {ref}: {exc}") from None


@functools.lru_cache(maxsize=None)
def _snapshot(ref: str) -> str:
    repo, revision = hub_parts(ref)
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f" at revision {revision}" if revision else ""
    try:
        return snapshot_download(repo, revision=revision, ignore_patterns=SKIPPED)
    except LocalEntryNotFoundError:
        offline = " and HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else " and the hub cannot be reached"
        raise UsageError(f"no such file or directory, and the Hugging Face hub model {repo}{at} is "
                         f"not in the cache {constants.HF_HUB_CACHE}{offline}; fetch it first with "
                         f"`hf download {repo}{' --revision ' + revision if revision else ''}`") from None
    except GatedRepoError:
        raise UsageError(f"the hub model {repo} is gated; accept its licence on the hub and "
                         "log in (`hf auth login`) or set HF_TOKEN") from None
    except RevisionNotFoundError:
        raise UsageError(f"the hub model {repo} has no revision {revision}") from None
    except RepositoryNotFoundError:
        raise UsageError(f"no such file or directory, and no Hugging Face hub model {repo} "
                         "(or it is private: log in with `hf auth login`)") from None


def hub_id(path: str) -> str | None:
    """The hub id (`owner/name`) a local path came from, when it is a snapshot folder of the HF cache."""
    parts = Path(path).parts
    for i, part in enumerate(parts[:-2]):
        if part.startswith("models--") and parts[i + 1] == "snapshots":
            return part.removeprefix("models--").replace("--", "/", 1)
    return None
