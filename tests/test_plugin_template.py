"""plugin_template/ is a working third-party plugin: installed, it is found, its tests pass, and it runs.

It is installed with `pip install --target` into a temporary directory put on
PYTHONPATH for subprocesses, so importlib.metadata sees its entry point exactly
as for a real install, while the project's .venv is never modified.
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

TEMPLATE = ROOT / "plugin_template"
Installed = tuple[Path, dict[str, str]]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A copy of the template (build artefacts stay out of the repo) installed into site/, and the env that sees it."""
    base = tmp_path_factory.mktemp("plugin")
    src, site = base / "tuneshift-example", base / "site"
    shutil.copytree(TEMPLATE, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    env = {"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1", "TUNESHIFT_DISABLE_PLUGIN_AUTOLOAD": ""}
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(src)],
                          capture_output=True, text=True, timeout=120, cwd=base)
    assert done.returncode == 0, done.stderr
    return src, env


def test_listed_by_tuneshift_plugins(installed: Installed) -> None:
    done = run_cli("plugins", "--json", env=installed[1])
    assert done.returncode == 0, done.stderr
    entries = {e["name"]: e for e in json.loads(done.stdout)}
    for name, kind in (("example-expander", "expander"), ("example-scorer", "scorer")):
        e = entries[name]
        assert (e["kind"], e["status"], e["builtin"], e["distribution"], e["version"]) == \
            (kind, "ok", False, "tuneshift-example", "0.1.0")


def test_own_tests_pass(installed: Installed) -> None:
    src, env = installed
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], capture_output=True,
                          text=True, timeout=120, cwd=src, env={**os.environ, **env})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout


@pytest.mark.slow
def test_runs_the_tiny_pipeline(installed: Installed, tiny: dict[str, Path], tmp_path: Path) -> None:
    # the config names self-generate with its options; --plugin replaces it and those options are set aside
    out = tmp_path / "run"
    done = run_cli("--plugin", "example-expander", "run", str(TINY / "config.toml"), "--out", str(out),
                   *tiny_overrides(tiny, **{"run.rounds": 1}), env=installed[1])
    assert done.returncode == 0, done.stderr[-3000:]
    set_aside = next(line for line in done.stderr.splitlines() if "are for self-generate" in line)
    assert set_aside.startswith("warning: [expander] options max_new_tokens")
    assert set_aside.endswith("are for self-generate, not example-expander: ignored")
    prov = json.loads((out / "run.json").read_text())
    assert prov["status"] == "ok"
    assert prov["plugins"]["expander"] == {"name": "example-expander", "distribution": "tuneshift-example",
                                           "version": "0.1.0"}
    rows = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r["origin"] == "example-expander"]
    assert mine and all(r["operator"] == "template" and r["parent"] for r in mine)


@pytest.mark.parametrize("kind", ["expander", "all"])
def test_new_plugin_renders_an_installable_distribution(kind: str, tmp_path: Path) -> None:
    done = run_cli("new-plugin", "My Gen", "--kind", kind, "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    src, site = tmp_path / "tuneshift-my-gen", tmp_path / "site"
    assert (src / "tuneshift_my_gen" / "expander.py").is_file()
    assert (src / "tuneshift_my_gen" / "scorer.py").is_file() == (kind == "all")
    leftovers = [p for p in src.rglob("*.py") if "example" in p.read_text().replace("Tests of the example", "")]
    assert not leftovers
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--no-index", "--target", str(site), str(src)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    env = {"PYTHONPATH": str(site)}
    rows = {e["name"]: e for e in json.loads(run_cli("plugins", "--json", env=env).stdout)}
    assert rows["my-gen-expander"]["status"] == "ok" and rows["my-gen-expander"]["distribution"] == "tuneshift-my-gen"
    assert ("my-gen-scorer" in rows) == (kind == "all")
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], capture_output=True,
                           text=True, cwd=src, env={**os.environ, **env})
    assert tests.returncode == 0, tests.stdout[-2000:]
    again = run_cli("new-plugin", "My Gen", "--out", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr
