"""`tuneshift push`: a run's adapter folder, and nothing else of the run, reaches a (loopback) hub.

The command runs as a user runs it, in a fresh process with HF_ENDPOINT pointing at tests/hub_server.py,
so what is checked is what huggingface_hub really sent: the repo creation, the token, the commit's files.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from conftest import one_error_line, run_cli
from hub_server import fake_hub
from serving import free_port

TOKEN = "hf_testPushToken0123456789"


@pytest.fixture(scope="module")
def trained(finished_run) -> Path:
    """A finished tiny run with a trained adapter (one round, no verification): the session's shared one."""
    return finished_run


@pytest.fixture
def hub():
    with fake_hub({TOKEN}) as server:
        yield server


def hub_env(url: str, home: Path, token: str = TOKEN, **extra: str) -> dict[str, str]:
    return {"HF_ENDPOINT": url, "HF_TOKEN": token, "HF_HUB_OFFLINE": "0", "HF_HOME": str(home),
            "HF_TOKEN_PATH": str(home / "token"), **extra}


def on_disk(adapter: Path) -> dict[str, bytes]:
    """The adapter folder's files as the hub should hold them: all but tuneshift's marker."""
    return {p.relative_to(adapter).as_posix(): p.read_bytes()
            for p in adapter.rglob("*") if p.is_file() and p.name != ".tuneshift"}


def api_requests(hub) -> list[dict]:
    return [r for r in hub.requests if r["path"] != "/api/agent-harnesses"]


def test_push_commits_exactly_the_adapter_folder(trained, hub, tmp_path):
    adapter = trained / "adapter"
    assert (adapter / ".tuneshift").is_file() and (adapter / "README.md").is_file()
    expected = on_disk(adapter)
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(expected)
    result = run_cli("push", str(trained), "--repo", "someone/tiny-adapter", "--private", "--message", "first push",
                     env=hub_env(hub.url, tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"pushed {len(expected)} files of {adapter} to {hub.url}/someone/tiny-adapter/commit/")

    creates = [r for r in hub.requests if r["path"] == "/api/repos/create"]
    assert [c["body"] for c in creates] == [{"name": "tiny-adapter", "organization": "someone",
                                             "visibility": "private", "type": "model"}]
    assert hub.repos["someone/tiny-adapter"]["visibility"] == "private"
    [commit] = hub.commits()
    assert commit["path"] == "/api/models/someone/tiny-adapter/commit/main"
    header, *lines = commit["body"]
    assert header == {"key": "header", "value": {"summary": "first push", "description": ""}}
    sent = {line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in lines}
    assert sent == expected  # names and bytes: no marker, no dataset, cache or state of the run
    assert sent["README.md"] == (adapter / "README.md").read_bytes() and b"tuneshift" in sent["README.md"]
    assert hub.files("someone/tiny-adapter") == {".gitattributes": b"*.safetensors filter=lfs\n", **expected}
    assert api_requests(hub) and all(r["headers"].get("authorization") == f"Bearer {TOKEN}"
                                     for r in api_requests(hub))


def test_push_to_an_existing_repo_and_a_new_branch(trained, hub, tmp_path):
    env = hub_env(hub.url, tmp_path)
    assert run_cli("push", str(trained), "--repo", "someone/again", env=env).returncode == 0
    # huggingface_hub's single-commit path (without hf_xet) too
    result = run_cli("push", str(trained), "--repo", "someone/again", "--revision", "dev",
                     env={**env, "HF_HUB_DISABLE_XET": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    creates = [r["body"] for r in hub.requests if r["path"] == "/api/repos/create"]
    assert len(creates) == 2 and all("visibility" not in c for c in creates)  # the hub's default; a 409 is fine
    assert [r["path"] for r in hub.commits()] == ["/api/models/someone/again/commit/main",
                                                  "/api/models/someone/again/commit/dev"]
    assert hub.files("someone/again", "dev") == hub.files("someone/again", "main")
    assert f"{hub.url}/someone/again/commit/" in result.stderr


@pytest.mark.parametrize("case", ["no-adapter", "bad-repo", "no-owner", "offline", "no-token"])
def test_refusals_are_one_line_before_any_request(case, trained, hub, tmp_path):
    run_dir, repo, env = trained, "someone/tiny-adapter", hub_env(hub.url, tmp_path)
    if case == "no-adapter":
        run_dir = tmp_path / "untrained"
        (run_dir / "adapter").mkdir(parents=True)
    elif case == "bad-repo":
        repo = "some--one/tiny..adapter"
    elif case == "no-owner":  # would land in whichever account the token is
        repo = "tiny-adapter"
    elif case == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    else:  # neither HF_TOKEN nor a saved login (an empty HF_HOME)
        env.update(HF_TOKEN="", HUGGING_FACE_HUB_TOKEN="", HF_OIDC_RESOURCE="")
    line = one_error_line(run_cli("push", str(run_dir), "--repo", repo, env=env))
    assert {"no-adapter": f"{run_dir}: no trained adapter; run `tuneshift train {run_dir}` first",
            "bad-repo": f"--repo {repo}: not a hub repo id; expected owner/name",
            "no-owner": f"--repo {repo}: not a hub repo id; expected owner/name",
            "offline": "HF_HUB_OFFLINE is set: pushing needs the hub",
            "no-token": "no Hugging Face token: set HF_TOKEN or run `hf auth login`"}[case] in line
    assert hub.requests == []


def test_hub_failures_are_one_line_naming_the_repo(trained, hub, tmp_path):
    line = one_error_line(run_cli("push", str(trained), "--repo", "someone/denied",
                                  env=hub_env(hub.url, tmp_path, token="hf_wrongToken")), code=1)
    assert "someone/denied" in line and "HTTP 401: Invalid credentials in Authorization header" in line
    assert hub.commits() == [] and hub.repos == {}
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    line = one_error_line(run_cli("push", str(trained), "--repo", "someone/denied",
                                  env=hub_env(gone, tmp_path)), code=1)
    assert f"push to someone/denied on {gone} failed: ConnectError" in line
