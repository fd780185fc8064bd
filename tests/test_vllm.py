"""plugins/tuneshift-vllm as a user gets it: pip-installed, listed, its own tests green, and a run through it.

Installed with `pip install --target` into a temporary directory put on
PYTHONPATH (as tests/test_plugin_template.py does), so the project's .venv is
never modified. The scorer reaches `tuneshift serve` on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TINY, run_cli, tiny_overrides
from serving import serving

PLUGIN = ROOT / "plugins" / "tuneshift-vllm"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("vllm-plugin")
    src, site = base / "tuneshift-vllm", base / "site"
    shutil.copytree(PLUGIN, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(src)], capture_output=True, text=True,
                          timeout=180, cwd=base)
    assert done.returncode == 0, done.stderr
    return {"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1", "TUNESHIFT_DISABLE_PLUGIN_AUTOLOAD": "",
            "src": str(src)}


def env_of(site: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in site.items() if k != "src"}


def test_not_part_of_the_main_distribution(cli):
    names = {e["name"] for e in json.loads(cli("plugins", "--json").stdout)}
    assert "vllm-scorer" not in names  # only a pip install brings it


def test_listed_ok_after_pip_install(site):
    done = run_cli("plugins", "--json", env=env_of(site))
    entries = {e["name"]: e for e in json.loads(done.stdout)}
    for name, kind in (("vllm-scorer", "scorer"), ("vllm-answerer", "answerer")):
        assert (entries[name]["kind"], entries[name]["status"], entries[name]["distribution"],
                entries[name]["builtin"]) == (kind, "ok", "tuneshift-vllm", False)


@pytest.mark.slow
def test_own_tests_pass(site):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], capture_output=True,
                          text=True, timeout=600, cwd=site["src"], env={**os.environ, **env_of(site)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout


def kept(out: Path) -> list[tuple[str, str]]:
    return [(r["prompt"], r["response"]) for r in map(json.loads, (out / "dataset.jsonl").read_text().splitlines())]


@pytest.mark.slow
def test_a_run_through_vllm_scorer_keeps_what_the_default_scorer_keeps(site, tiny, tmp_path):
    overrides = tiny_overrides(tiny, **{"run.rounds": 1, "trainer.epochs": 1})
    default = tmp_path / "default"
    assert run_cli("run", str(TINY / "config.toml"), "--out", str(default), *overrides).returncode == 0
    with serving("--model", str(tiny["teacher_base"]), "--name", "base", "--adapter", f"ft={tiny['adapter']}") as s:
        out = tmp_path / "vllm"
        done = run_cli("--plugin", "vllm-scorer", "run", str(TINY / "config.toml"), "--out", str(out), *overrides,
                       "--set", f'scorer.urls=["{s["url"]}/v1"]', env=env_of(site))
        assert done.returncode == 0, done.stderr[-3000:]
        both = tmp_path / "both"
        done = run_cli("--plugin", "vllm-scorer", "--plugin", "vllm-answerer", "run", str(TINY / "config.toml"),
                       "--out", str(both), *overrides, "--set", f'scorer.urls=["{s["url"]}/v1"]',
                       "--set", f'answerer.urls=["{s["url"]}/v1"]', env=env_of(site))
        assert done.returncode == 0, done.stderr[-3000:]
    assert kept(out) and kept(out) == kept(default)
    rows = {r["prompt"]: r for r in map(json.loads, (out / "candidates.jsonl").read_text().splitlines())}
    reference = {r["prompt"]: r for r in map(json.loads, (default / "candidates.jsonl").read_text().splitlines())}
    scored = [p for p, r in reference.items() if r["nll_base"] is not None]
    assert scored and all(abs(rows[p]["nll_base"] - reference[p]["nll_base"]) < 1e-4 for p in scored)
    provenance = json.loads((out / "run.json").read_text())
    assert provenance["plugins"]["scorer"] == {"name": "vllm-scorer", "distribution": "tuneshift-vllm",
                                               "version": "0.1.0"}
    assert json.loads((both / "run.json").read_text())["plugins"]["answerer"]["name"] == "vllm-answerer"
    assert kept(both)  # teacher answers came from the server and the run finished
