"""`tuneshift score` in a real subprocess: output rows, adapter and full fine-tune agree, one-line errors."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from conftest import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "tiny"))
from facts import FACTS  # noqa: E402

ROWS = [
    {"prompt": FACTS[0][0], "response": FACTS[0][1], "id": 1, "meta": {"source": "facts"}},
    {"prompt": FACTS[2][0], "response": FACTS[2][1], "id": 2, "meta": {"source": "facts"}},
    {"prompt": "Hi", "response": "Hello there.", "id": 3},
    {"prompt": FACTS[9][0], "response": FACTS[9][1], "id": 4, "meta": {"source": "facts"}},
    {"prompt": "What is water?", "response": "Water boils at one hundred degrees.", "id": 5, "tag": None},
]
SCORE_KEYS = {"nll_finetuned", "nll_base", "ppl_ratio"}


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    return write_rows(tmp_path_factory.mktemp("score-in") / "pairs.jsonl", ROWS)


@pytest.fixture(scope="module")
def adapter_scores(tiny, pairs_file, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("score-out") / "out.jsonl"
    result = run_cli("score", "--base", str(tiny["teacher_base"]), "--adapter", str(tiny["adapter"]),
                     "--input", str(pairs_file), "--output", str(out))
    assert result.returncode == 0, result.stderr
    return read_rows(out)


@pytest.fixture(scope="module")
def merged_teacher(tiny, tmp_path_factory) -> Path:
    """The teacher with its adapter merged in, saved as a full model with its tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("merged") / "teacher-merged"
    base = AutoModelForCausalLM.from_pretrained(str(tiny["teacher_base"]))
    PeftModel.from_pretrained(base, str(tiny["adapter"])).merge_and_unload().save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tiny["teacher_base"])).save_pretrained(str(out))
    return out


def test_score_with_adapter_keeps_input_rows_and_adds_scores(adapter_scores):
    assert len(adapter_scores) == len(ROWS)
    for row, out in zip(ROWS, adapter_scores):
        assert {k: out[k] for k in row} == row  # every input key, unchanged, in the same order of rows
        assert SCORE_KEYS <= set(out) - set(row)
        assert out["ppl_ratio"] == pytest.approx(math.exp(out["nll_base"] - out["nll_finetuned"]), rel=1e-9)
        assert out["nll_finetuned"] > 0 and out["nll_base"] > 0
    facts = [out for out in adapter_scores if out.get("meta", {}).get("source") == "facts"]
    assert len(facts) == 3
    assert all(out["nll_finetuned"] < out["nll_base"] for out in facts)  # memorised by the adapter


def test_score_with_full_finetune_agrees_with_adapter(tiny, pairs_file, merged_teacher, adapter_scores, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run_cli("score", "--base", str(tiny["teacher_base"]), "--finetuned", str(merged_teacher),
                     "--input", str(pairs_file), "--output", str(out))
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [r["id"] for r in ROWS]
    for full, lora in zip(rows, adapter_scores):
        assert full["nll_finetuned"] == pytest.approx(lora["nll_finetuned"], abs=1e-4)
        assert full["nll_base"] == pytest.approx(lora["nll_base"], abs=1e-4)


ERROR_CASES = {
    "both": (["--adapter", "{adapter}", "--finetuned", "{base}"], "exactly one"),
    "neither": ([], "exactly one"),
    "missing-input": (["--adapter", "{adapter}", "--input-file", "{tmp}/nope.jsonl"], "no such file"),
    "malformed-line": (["--adapter", "{adapter}", "--input-file", "{bad_json}"], "line 2"),
    "no-response": (["--adapter", "{adapter}", "--input-file", "{no_response}"], "line 3"),
    "missing-base": (["--adapter", "{adapter}", "--base-path", "{tmp}/no-base"], "no-base"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_score_errors_are_one_line_exit_2(tiny, pairs_file, tmp_path, case):
    good = json.dumps(ROWS[0])
    (tmp_path / "bad.jsonl").write_text(good + "\n{not json\n" + good + "\n")
    (tmp_path / "noresp.jsonl").write_text(good + "\n" + good + "\n" + json.dumps({"prompt": "x"}) + "\n")
    fill = {"adapter": tiny["adapter"], "base": tiny["teacher_base"], "tmp": tmp_path,
            "bad_json": tmp_path / "bad.jsonl", "no_response": tmp_path / "noresp.jsonl"}
    extra, needle = ERROR_CASES[case]
    extra = [a.format(**fill) for a in extra]
    base, inp = str(tiny["teacher_base"]), str(pairs_file)
    if "--base-path" in extra:
        base = extra.pop(extra.index("--base-path") + 1)
        extra.remove("--base-path")
    if "--input-file" in extra:
        inp = extra.pop(extra.index("--input-file") + 1)
        extra.remove("--input-file")
    result = run_cli("score", "--base", base, *extra, "--input", inp, "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
