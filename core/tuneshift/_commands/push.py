"""`tuneshift push RUN_DIR --repo ID`: publish a run's trained adapter as a Hugging Face hub model repo.

Only `RUN_DIR/adapter` leaves the machine (weights, config, tokenizer, chat
template, model card), never the run's dataset, cache or state, which may hold
the private teacher's answers. huggingface_hub does the talking (HF_ENDPOINT,
HF_TOKEN and `hf auth login` honoured as everywhere else); every refusal that
needs no hub is made before the first request, and a failed request is one
line naming the repo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tuneshift._errors import RunError, UsageError
from tuneshift._rundir import MARKER

IGNORED = [MARKER, f"*/{MARKER}"]
"""tuneshift's own bookkeeping in the adapter folder: meaningless on the hub."""


def adapter_files(run_dir: Path) -> tuple[Path, list[Path]]:
    """The run's adapter folder and the files of it that are pushed; a usage error when it has none."""
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise UsageError(f"{run_dir}: no trained adapter; run `tuneshift train {run_dir}` first")
    return adapter, sorted(p for p in adapter.rglob("*") if p.is_file() and p.name != MARKER)


def check_hub(repo: str) -> None:
    """Refuse, before any request, what no hub could accept: a malformed id, offline mode, no token."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
        valid = repo.count("/") == 1  # a bare name would land in whichever account the token is
    except HFValidationError:
        valid = False
    if not valid:
        raise UsageError(f"--repo {repo}: not a hub repo id; expected owner/name: letters, digits, '-', '_', '.', "
                         "no '--' or '..', at most 96 characters")
    if constants.HF_HUB_OFFLINE:
        raise UsageError("HF_HUB_OFFLINE is set: pushing needs the hub")
    if get_token() is None:
        raise UsageError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")


def transport_errors() -> tuple[type[BaseException], ...]:
    """What huggingface_hub's HTTP library raises when the hub cannot be reached (httpx2 in 2.x, httpx in
    1.x; requests' errors, in 0.x, are OSErrors)."""
    import importlib

    found: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def reason(exc: BaseException) -> str:
    """One line for a failed hub request: the status and the hub's own message when it answered."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    text = getattr(exc, "server_message", None) or str(exc)
    line = " ".join(part.strip() for part in text.splitlines() if part.strip())[:400] or type(exc).__name__
    return f"HTTP {status}: {line}" if isinstance(status, int) else f"{type(exc).__name__}: {line}"


def push(run_dir: Path, repo: str, private: bool = False, revision: str | None = None,
         message: str | None = None) -> tuple[int, str]:
    """Create `repo` if needed and commit the adapter folder to it; returns (files pushed, commit URL)."""
    run_dir = Path(run_dir)
    adapter, files = adapter_files(run_dir)
    check_hub(repo)
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        # private=None when not asked: the hub's (or the organisation's) default visibility
        api.create_repo(repo, private=True if private else None, exist_ok=True, repo_type="model")
        if revision and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo, branch=revision, exist_ok=True, repo_type="model")
        info: Any = api.upload_folder(repo_id=repo, folder_path=adapter, repo_type="model", revision=revision,
                                      ignore_patterns=list(IGNORED),
                                      commit_message=message or f"tuneshift adapter of {run_dir.resolve().name}")
    except (HfHubHTTPError, OSError, ValueError, *transport_errors()) as exc:  # ValueError: a card the hub refused
        raise RunError(f"push to {repo} on {api.endpoint} failed: {reason(exc)}") from None
    return len(files), str(getattr(info, "commit_url", None) or f"{api.endpoint}/{repo}")


@click.command("push")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option("--repo", required=True, metavar="ID", help="The hub model repo, owner/name (created if missing).")
@click.option("--private", is_flag=True, help="Create the repo private (an existing repo keeps its visibility).")
@click.option("--revision", metavar="BRANCH", default=None, help="Commit to this branch (created if missing).")
@click.option("--message", metavar="TEXT", default=None, help="The commit message.")
def command(run_dir: Path, repo: str, private: bool, revision: str | None, message: str | None) -> None:
    """Upload RUN_DIR's trained adapter (and its model card) to a Hugging Face hub model repo."""
    n, url = push(run_dir, repo, private, revision, message)
    click.echo(f"pushed {n} files of {run_dir / 'adapter'} to {url}", err=True)
