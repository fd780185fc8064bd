"""Shared fixtures: offline environment, the tiny example's models (built once), CLI helpers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TUNESHIFT_PRECISION", "float32")  # `auto` means the same on every CPU; tests of bfloat16 ask for it


# plugin modules that must not take the CLI down: one fails to import, one speaks another plugin API
BROKEN_PLUGIN = "raise ImportError('this plugin is deliberately broken')\n"
OLD_API_PLUGIN = '''
import tuneshift
from tuneshift.kinds import Deduper

class Old(Deduper):
    name = "old-dedup"
    api_version = 0

@tuneshift.hookimpl
def register_dedupers(register):
    register(Old)
'''


def _load_build():
    spec = importlib.util.spec_from_file_location("tiny_build", TINY / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """The tiny example's models and files, built once per test session."""
    out = tmp_path_factory.mktemp("tiny-models")
    _load_build().build(out)
    return {"dir": out, "teacher_base": out / "teacher-base", "adapter": out / "teacher-adapter",
            "target": out / "target", "seeds": out / "seeds.jsonl", "eval": out / "eval.jsonl"}


@pytest.fixture(scope="session")
def finished_run(tiny, tmp_path_factory) -> Path:
    """One finished tiny run (one round, a trained adapter, evaluation, no verification), shared by the tests
    that only read what it wrote (export, prompt formats, the card, push, tensorboard): never write into it."""
    out = tmp_path_factory.mktemp("shared-run") / "run"
    result = run_cli("run", str(TINY / "config.toml"), "--out", str(out),
                     *tiny_overrides(tiny, **{"run.rounds": 1, "verify.enabled": False}))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "adapter" / "adapter_config.json").is_file()
    return out


def tiny_overrides(tiny: dict[str, Path], **extra: object) -> list[str]:
    """--set arguments pointing examples/tiny/config.toml at the session's built models."""
    sets = {"teacher.base": tiny["teacher_base"], "teacher.adapter": tiny["adapter"],
            "target.model": tiny["target"], "seeds.path": tiny["seeds"], "eval.path": tiny["eval"]}
    out = []
    for key, value in {**sets, **extra}.items():
        out += ["--set", f'{key}="{value}"' if isinstance(value, (str, Path)) else f"{key}={json.dumps(value)}"]
    return out


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `tuneshift ARGS` in a fresh process (as a user would)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", "import sys; from tuneshift._cli import main; sys.exit(main())",
                           *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT)


def one_error_line(result: subprocess.CompletedProcess, code: int = 2, alone: bool = True) -> str:
    """The single `error:` line of a failed command: its exit code, no traceback, and nothing else on
    stderr (`alone`), or else only lines before it (warnings, progress) and none of them an error."""
    assert result.returncode == code, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and lines and lines[-1].startswith("error: "), result.stderr[-2000:]
    assert len(lines) == 1 if alone else sum(line.startswith("error: ") for line in lines) == 1
    return lines[-1]


@pytest.fixture
def cli():
    return run_cli
