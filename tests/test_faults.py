"""Faults while running: the generator server dies mid-round, the disk fills up, the output is read-only.

Each fails with one line, keeps the finished work on disk, and the rerun continues from it to the
same result as a run without the fault.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from conftest import ROOT, TINY, run_cli, tiny_overrides
from fake_llm import FakeLLM
from tuneshift import _cli as cli

CONFIG = str(TINY / "config.toml")
KEY = "sk-fault-test-5d1e"  # must reach the server and nowhere else


def litellm_run(tiny, out: Path, url: str, env: dict[str, str] | None = None):
    return run_cli("--plugin", "litellm-paraphrase", "run", CONFIG, "--out", str(out),
                   *tiny_overrides(tiny, **{"run.rounds": 2, "expander.model": "openai/ft", "expander.api_base": url,
                                            "expander.prompts_per_request": 2, "expander.concurrency": 1,
                                            "expander.retries": 2, "expander.backoff": 0.2,
                                            "expander.api_key_env": "TS_FAULT_KEY", "verify.enabled": False}),
                   env={"TS_FAULT_KEY": KEY, "OMP_NUM_THREADS": "1", **(env or {})})


def last_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and lines, result.stderr[-2000:]
    return lines[-1]


def test_generator_server_dies_mid_round_then_the_rerun_continues(tiny, tmp_path):
    out, reference = tmp_path / "out", tmp_path / "reference"
    # round 1 sends 4 requests, round 2 another 4: the server answers 5, then dies
    with FakeLLM("ok", die_after=5) as dying:
        failed = litellm_run(tiny, out, dying.url)
        port = dying.port
    assert failed.returncode == 1
    assert last_error(failed).startswith("error: expander litellm-paraphrase: openai/ft failed after 2 retries: ")
    assert dying.requests == 5 and set(dying.auth) == {f"Bearer {KEY}"}
    assert (out / "state" / "round-001" / "select.json").is_file()  # round 1 stays on disk
    assert not (out / "state" / "round-002" / "expand.json").exists()
    assert {c["round"] for c in map(json.loads, (out / "candidates.jsonl").read_text().splitlines())} == {0, 1}
    assert json.loads((out / "run.json").read_text())["status"] == "failed"

    with FakeLLM("ok", port=port) as revived:  # the same address: the same job
        resumed = litellm_run(tiny, out, revived.url)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert revived.requests == 3  # round 2's first reply came from the cache
        fresh = litellm_run(tiny, reference, revived.url)
        assert fresh.returncode == 0, fresh.stderr[-3000:]
    for name in ("candidates.jsonl", "dataset.jsonl"):
        assert (out / name).read_text() == (reference / name).read_text(), name
    assert any(json.loads(line)["round"] == 2 for line in (out / "candidates.jsonl").read_text().splitlines())
    for path in out.rglob("*"):  # the key went to the server, never to the run directory
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in resumed.stderr + failed.stderr


def fault_env(fault: dict) -> dict[str, str]:
    return {"TUNESHIFT_PLUGINS": "fault_plugin", "TS_FAULT": json.dumps(fault), "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT / "tests") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_disk_full_mid_run_is_one_line_and_the_rerun_completes(tiny, tmp_path):
    out = tmp_path / "out"
    full = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **{"verify.enabled": False}),
                   env=fault_env({"action": "disk_full", "stage": "expand", "round": 1, "at": "end"}))
    assert full.returncode == 1
    assert last_error(full) == (f"error: cannot write {out / 'state' / 'round-001' / 'expand.json'}: "
                                "No space left on device")
    assert not (out / "state" / "round-001" / "expand.json").exists()
    assert not [p for p in out.rglob(".*") if p.name not in (".lock", ".tuneshift")]  # the temporary file went with the failure
    round0 = (out / "candidates.jsonl").read_text()
    assert {json.loads(line)["round"] for line in round0.splitlines()} == {0}

    resumed = run_cli("run", CONFIG, "--out", str(out), *tiny_overrides(tiny, **{"verify.enabled": False}),
                      env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    assert (out / "candidates.jsonl").read_text().startswith(round0)
    assert [r["id"] for r in rows] == list(range(len(rows))) and {r["round"] for r in rows} == {0, 1, 2}


def test_read_only_output_directory_is_a_usage_error(tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ro"  # empty: a folder holding a user's files is refused before (test_ownership.py)
    out.mkdir()
    args = ["run", CONFIG, "--out", str(out), *tiny_overrides(tiny)]
    if os.geteuid() != 0:  # a real read-only directory
        out.chmod(0o555)
        try:
            result = run_cli(*args)
        finally:
            out.chmod(0o755)
        code, stderr = result.returncode, result.stderr
    else:  # root writes through chmod: answer as the kernel would answer anyone else, in-process
        real_mkdir = Path.mkdir

        def refuse(self: Path, *a, **k) -> None:
            if self == out or out in self.parents:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_mkdir(self, *a, **k)

        monkeypatch.setattr(Path, "mkdir", refuse)
        code, stderr = cli.main(args), capsys.readouterr().err
    assert code == 2 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == f"error: output {out}: not writable (Permission denied)"
    assert not list(out.iterdir())  # nothing written, not even tuneshift's marker
