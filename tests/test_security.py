"""Secrets stay out of the run directory, remote code stays off, model files load as safetensors only.

The key-never-on-disk test against a live generator server is tests/test_faults.py (and
tests/test_litellm.py for `tuneshift serve`); these are the cheap in-process checks.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

import pytest
from conftest import TINY, tiny_overrides

from tuneshift._config import CoreConfig
from tuneshift._errors import UsageError
from tuneshift._registry import Registry
from tuneshift._commands.state import State
from tuneshift._runner import Run
from tuneshift.kinds import ModelSpec

SECRET = "sk-never-on-disk-8c2f"
TOKEN = "hf_never_on_disk_41aa"
SECRET_PLUGIN = '''
import tuneshift
from tuneshift.kinds import Expander, Options

class SecretOptions(Options):
    api_key: str = ""
    hf_token: str = ""
    max_new_tokens: int = 8
    positives: int = 0

class SecretExpander(Expander):
    name = "secret-expander"
    Options = SecretOptions

@tuneshift.hookimpl
def register_expanders(register):
    register(SecretExpander)
'''


def open_run(tiny, out: Path, *sets: str) -> Run:
    args = tiny_overrides(tiny)
    overrides = [args[i + 1] for i in range(0, len(args), 2)] + list(sets)
    return Run(TINY / "config.toml", out, overrides, State(Registry(), [])).open()


def test_secrets_in_the_config_never_reach_the_run_directory(tiny, tmp_path, monkeypatch):
    (tmp_path / "ts_secret.py").write_text(SECRET_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TUNESHIFT_PLUGINS", "ts_secret")
    out = tmp_path / "out"
    run = open_run(tiny, out, "expander.use=secret-expander", f"expander.api_key={SECRET}",
                   f"expander.hf_token={TOKEN}")
    try:
        assert run.impl["expander"].options.api_key == SECRET  # the plugin gets the real value
        provenance = run.provenance(time.time(), "ok", {})
        assert provenance["config"]["expander"] == {"use": "secret-expander", "api_key": "***", "hf_token": "***",
                                                    "max_new_tokens": 48, "positives": 3}
        assert SECRET not in str(provenance) and TOKEN not in str(provenance)
    finally:
        run.close()
    for path in out.rglob("*"):  # config.toml, job.json, the cache
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and TOKEN.encode() not in data, path


def test_trust_remote_code_is_off_unless_set_and_warns_when_on(tiny):
    from tuneshift_hf import loading

    raw = {"teacher": {"base": "b", "adapter": "a"}, "seeds": {"prompts": ["p"]}, "target": {"model": "t"}}
    cfg = CoreConfig.model_validate(raw)
    assert cfg.teacher.trust_remote_code is False and cfg.target.trust_remote_code is False
    assert ModelSpec(base="b").trust_remote_code is False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loading.load_tokenizer(str(tiny["target"]))
    assert not [w for w in caught if "trust_remote_code" in str(w.message)]
    with pytest.warns(UserWarning, match="trust_remote_code is on: its repository code will run"):
        loading.load_tokenizer(str(tiny["target"]), trust_remote_code=True)


def test_pickled_weights_are_refused_before_loading(tiny, tmp_path):
    from tuneshift_hf.checks import check_adapter_fits, check_model_dir

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny["target"], pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(UsageError, match="no .safetensors weights .found pytorch_model.bin"):
        check_model_dir(str(pickled))
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny["adapter"], adapter)
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    with pytest.raises(UsageError, match="no adapter_model.safetensors"):
        check_adapter_fits(str(adapter), str(tiny["teacher_base"]))


def test_a_teacher_without_chat_template_warns_and_uses_the_plain_format(tiny, tmp_path):
    """Not an error (base models have no template), but worth a line: the teacher answers in another format."""
    bare = tmp_path / "bare-base"
    shutil.copytree(tiny["teacher_base"], bare)
    (bare / "chat_template.jinja").unlink()
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="its tokenizer has no chat template; prompts use the plain"):
        run = open_run(tiny, out, f'teacher.base="{bare}"')
    run.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_run(tiny, tmp_path / "out2").close()  # the tiny teacher has a template: no warning
    assert not [w for w in caught if "chat template" in str(w.message)]


def test_serve_binds_loopback_unless_told(cli):
    result = cli("serve", "--help")
    text = " ".join(result.stdout.split())  # help wraps where it likes
    assert result.returncode == 0
    assert "--host TEXT Interface; loopback unless told. [default: 127.0.0.1]" in text, text
