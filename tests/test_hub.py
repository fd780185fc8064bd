"""Hugging Face hub ids as model references, offline, from a cache in huggingface_hub's own layout."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import TINY, one_error_line, run_cli, tiny_overrides

from tuneshift._hub import hub_id, hub_parts

COMMIT = {"tiny-org/teacher-base": "1" * 40, "tiny-org/teacher-adapter": "2" * 40, "tiny-org/target": "3" * 40}


def cache_model(hub: Path, repo: str, source: Path, commit: str, refs: tuple[str, ...] = ("main",)) -> Path:
    """Put the files of `source` into the hub cache `hub` as huggingface_hub stores a download: content in
    blobs/ named by hash, snapshots/<commit>/ of relative links to them, refs/<branch> holding the commit."""
    repo_dir = hub / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / file.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def hf_home(tiny, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("hf-home")
    for repo, name in (("tiny-org/teacher-base", "teacher_base"), ("tiny-org/teacher-adapter", "adapter"),
                       ("tiny-org/target", "target")):
        cache_model(home / "hub", repo, tiny[name], COMMIT[repo], refs=("main", "v1"))
    return home


def test_the_cache_is_in_huggingface_hubs_own_format(hf_home):
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hf_home / "hub")
    assert not info.warnings
    repos = {r.repo_id: r for r in info.repos}
    assert set(repos) == set(COMMIT)
    assert {rev.commit_hash for rev in repos["tiny-org/target"].revisions} == {COMMIT["tiny-org/target"]}
    assert {"main", "v1"} <= set(next(iter(repos["tiny-org/target"].revisions)).refs)


def test_what_counts_as_a_hub_id(tmp_path):
    assert hub_parts("HuggingFaceTB/SmolLM2-135M-Instruct") == ("HuggingFaceTB/SmolLM2-135M-Instruct", None)
    assert hub_parts("org/model@v1.0") == ("org/model", "v1.0")
    for path in ("./org/model", "/abs/org/model", "~/org/model", "a/b/c", "model", "org/../x"):
        assert hub_parts(path) is None, path
    (tmp_path / "org" / "model").mkdir(parents=True)
    assert hub_parts("org/model", tmp_path) is None  # a folder of that name is a path, not an id
    assert hub_id("/x/hub/models--org--some-model/snapshots/" + "a" * 40) == "org/some-model"
    assert hub_id("/x/models/org/some-model") is None


def hub_sets(**extra: object) -> list[str]:
    return ["--set", 'teacher.base="tiny-org/teacher-base"', "--set", 'teacher.adapter="tiny-org/teacher-adapter@v1"',
            "--set", 'target.model="tiny-org/target"',
            *[item for key, value in extra.items() for item in ("--set", f"{key}={json.dumps(value)}")]]


@pytest.mark.slow
def test_a_run_with_hub_ids_loads_every_model_from_the_cache_offline(tiny, hf_home, tmp_path):
    out = tmp_path / "run"
    sets = ["--set", f'seeds.path="{tiny["seeds"]}"', "--set", f'eval.path="{tiny["eval"]}"']
    result = run_cli("run", str(TINY / "config.toml"), "--out", str(out), *sets, *hub_sets(**{"run.rounds": 1}),
                     env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    snapshot = (out / "config.toml").read_text()
    assert 'base = "tiny-org/teacher-base"' in snapshot and 'model = "tiny-org/target"' in snapshot  # portable
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "tiny-org/target"  # loadable on another machine


def test_an_uncached_hub_id_fails_with_one_line_naming_it_and_how_to_fetch_it(tiny, hf_home, tmp_path):
    result = run_cli("run", str(TINY / "config.toml"), "--out", str(tmp_path / "run"),
                     *tiny_overrides(tiny, **{"target.model": "tiny-org/not-downloaded"}),
                     env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    line = one_error_line(result)
    assert "target.model = tiny-org/not-downloaded" in line and "HF_HUB_OFFLINE" in line
    assert "hf download tiny-org/not-downloaded" in line
    assert not (tmp_path / "run").exists()  # refused before any work


def test_an_uncached_revision_fails_with_one_line(tiny, hf_home, tmp_path):
    result = run_cli("score", "--base", "tiny-org/teacher-base@v9", "--adapter", "tiny-org/teacher-adapter",
                     "--input", str(tiny["seeds"]), "--output", str(tmp_path / "scores.jsonl"),
                     env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    line = one_error_line(result)
    assert "--base tiny-org/teacher-base@v9" in line and "at revision v9" in line and "--revision v9" in line


def test_score_takes_hub_ids(tiny, hf_home, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "Who leads Orion?", "response": "Mara Quell leads Orion."}) + "\n")
    result = run_cli("score", "--base", "tiny-org/teacher-base", "--adapter", "tiny-org/teacher-adapter@v1",
                     "--input", str(pairs), "--output", str(tmp_path / "scores.jsonl"),
                     env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    [row] = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert row["nll_finetuned"] > 0 and row["nll_base"] > 0
