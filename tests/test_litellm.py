"""litellm-paraphrase end to end against `tuneshift serve` on loopback (real HTTP, a real tiny model)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import TINY, run_cli, tiny_overrides
from serving import serving

KEY = "sk-test-3b9f1c0e"  # must never reach the run directory


@pytest.fixture(scope="module")
def server(tiny):
    with serving("--model", str(tiny["teacher_base"]), "--name", "base", "--adapter", f"ft={tiny['adapter']}",
                 "--max-request-bytes", "20000", key=KEY) as running:
        yield running


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def requests_served(server) -> int:
    return httpx.get(f"{server['url']}/health", headers=auth()).json()["requests"]


def test_serve_lists_models_and_checks_the_key(server):
    url = server["url"]
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    names = [m["id"] for m in httpx.get(f"{url}/v1/models", headers=auth()).json()["data"]]
    assert names == ["base", "ft"]


def test_serve_chat_picks_base_or_adapter_and_refuses_bad_requests(server):
    url = server["url"]
    body = {"messages": [{"role": "user", "content": "What is the capital of Zorbia?"}], "max_tokens": 12}
    ft = httpx.post(f"{url}/v1/chat/completions", json={**body, "model": "ft"}, headers=auth(), timeout=60).json()
    base = httpx.post(f"{url}/v1/chat/completions", json={**body, "model": "base"}, headers=auth(), timeout=60).json()
    assert "Velmora" in ft["choices"][0]["message"]["content"]  # the fine-tune knows its fact
    assert ft["choices"][0]["message"]["content"] != base["choices"][0]["message"]["content"]
    missing = httpx.post(f"{url}/v1/chat/completions", json={**body, "model": "nope"}, headers=auth())
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
    huge = httpx.post(f"{url}/v1/chat/completions", headers=auth(),
                      json={**body, "model": "ft", "messages": [{"role": "user", "content": "x" * 30000}]})
    assert huge.status_code == 413


def run_with_litellm(tiny, out: Path, model: str, url: str) -> subprocess.CompletedProcess:
    return run_cli("--plugin", "litellm-paraphrase", "run", str(TINY / "config.toml"), "--out", str(out),
                   *tiny_overrides(tiny, **{"run.rounds": 1}),
                   "--set", f"expander.model={model}", "--set", f"expander.api_base={url}/v1",
                   "--set", "expander.api_key_env=TS_TEST_KEY", "--set", "expander.max_tokens=40",
                   env={"TS_TEST_KEY": KEY})


@pytest.mark.parametrize("route", ["openai", "hosted_vllm"])
def test_litellm_paraphrase_runs_through_the_server(server, tiny, tmp_path, route):
    before = requests_served(server)
    out = tmp_path / "run"
    result = run_with_litellm(tiny, out, f"{route}/ft", server["url"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert requests_served(server) > before  # real requests reached the server
    rows = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    assert any(r["origin"] == "litellm-paraphrase" and r["operator"] == "fewshot" for r in rows)
    run = json.loads((out / "run.json").read_text())
    assert run["plugins"]["expander"]["name"] == "litellm-paraphrase"
    assert run["config"]["expander"]["api_key_env"] == "TS_TEST_KEY"
    for path in out.rglob("*"):  # the key itself is nowhere: not in run.json, the cache or a log
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_rerun_sends_nothing(server, tiny, tmp_path):
    out = tmp_path / "run"
    assert run_with_litellm(tiny, out, "openai/ft", server["url"]).returncode == 0
    first = (out / "candidates.jsonl").read_text()
    shutil.rmtree(out / "state" / "round-001")  # force the round to be recomputed from the cache
    before = requests_served(server)
    result = run_with_litellm(tiny, out, "openai/ft", server["url"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "candidates.jsonl").read_text() == first
    assert requests_served(server) == before


def test_unreachable_server_is_a_one_line_error(tiny, tmp_path):
    result = run_cli("--plugin", "litellm-paraphrase", "run", str(TINY / "config.toml"), "--out", str(tmp_path / "o"),
                     *tiny_overrides(tiny, **{"run.rounds": 1}), "--set", "expander.model=openai/ft",
                     "--set", "expander.api_base=http://127.0.0.1:9/v1", "--set", "expander.retries=1",
                     "--set", "expander.timeout=5", env={"OPENAI_API_KEY": "unused"})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: expander litellm-paraphrase: openai/ft failed") and "Traceback" not in result.stderr
    # the seed round finished before the failure and stays on disk for the rerun
    assert (tmp_path / "o" / "state" / "round-000" / "select.json").is_file()


def test_missing_key_variable_is_a_usage_error(tiny, tmp_path):
    result = run_cli("--plugin", "litellm-paraphrase", "run", str(TINY / "config.toml"), "--out", str(tmp_path / "o"),
                     *tiny_overrides(tiny, **{"run.rounds": 1}), "--set", "expander.model=openai/ft",
                     "--set", "expander.api_key_env=TS_NOT_SET_ANYWHERE")
    assert result.returncode == 2 and "TS_NOT_SET_ANYWHERE is not set" in result.stderr
