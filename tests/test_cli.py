"""The command line: --version, plugins, plugin selection and blocking, broken plugins, exit codes."""

from __future__ import annotations

import json

from conftest import BROKEN_PLUGIN, OLD_API_PLUGIN

import tuneshift

BUILTINS = {"self-generate", "hf-answerer", "exact", "hf-scorer", "ppl-ratio", "ppl-diff", "peft-lora"}


def test_version(cli):
    result = cli("--version")
    assert result.returncode == 0
    assert tuneshift.__version__ in result.stdout


def test_plugins_json_lists_builtins_ok(cli):
    result = cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    by_name = {r["name"]: r for r in rows}
    assert BUILTINS <= set(by_name)
    for name in BUILTINS:
        row = by_name[name]
        assert row["status"] == "ok"
        assert row["builtin"] is True
        assert row["distribution"] == "tuneshift"
        assert row["version"] == tuneshift.__version__
        assert {"name", "kind", "distribution", "version", "builtin", "status"} <= set(row)


def test_unknown_plugin_exits_2_and_names_it(cli):
    result = cli("--plugin", "no-such-thing", "plugins")
    assert result.returncode == 2
    assert "no-such-thing" in result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_unknown_plugin_suggests_close_name(cli):
    result = cli("--plugin", "ppl-ratoi", "plugins")
    assert result.returncode == 2
    assert "ppl-ratio" in result.stderr


def test_no_plugin_unknown_exits_2(cli):
    result = cli("--no-plugin", "nope-nope", "plugins")
    assert result.returncode == 2 and "nope-nope" in result.stderr


def test_no_plugin_blocks_an_entry_point(cli):
    rows = json.loads(cli("--no-plugin", "ppl-select", "plugins", "--json").stdout)
    assert not {"ppl-ratio", "ppl-diff"} & {r["name"] for r in rows}


def test_no_plugin_blocks_an_implementation(cli):
    rows = json.loads(cli("--no-plugin", "ppl-diff", "plugins", "--json").stdout)
    assert {r["name"]: r["status"] for r in rows}["ppl-diff"] == "blocked"
    result = cli("--no-plugin", "ppl-diff", "--plugin", "ppl-diff", "plugins")
    assert result.returncode == 2 and "blocked" in result.stderr


RAISES_IN_HOOK = '''
import tuneshift

@tuneshift.hookimpl
def register_scorers(register):
    raise RuntimeError("cannot register")
'''


def test_broken_plugins_are_listed_and_the_cli_keeps_working(cli, tmp_path):
    (tmp_path / "ts_broken.py").write_text(BROKEN_PLUGIN)
    (tmp_path / "ts_old.py").write_text(OLD_API_PLUGIN)
    (tmp_path / "ts_raises.py").write_text(RAISES_IN_HOOK)
    env = {"PYTHONPATH": str(tmp_path), "TUNESHIFT_PLUGINS": "ts_broken,ts_old,ts_raises"}
    assert cli("--help", env=env).returncode == 0
    result = cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["ts_broken"]["status"].startswith("error: ImportError")
    assert "deliberately broken" in rows["ts_broken"]["status"]
    assert rows["old-dedup"]["status"].startswith("error: written for plugin API 0")
    assert rows["ts_raises"]["status"].startswith("error: RuntimeError")
    assert all(rows[name]["status"] == "ok" for name in BUILTINS)
    selecting = cli("--plugin", "old-dedup", "plugins", env=env)
    assert selecting.returncode == 2 and "plugin API 0" in selecting.stderr


def test_disable_autoload_keeps_builtins_and_env_plugins(cli, tmp_path):
    (tmp_path / "ts_old.py").write_text(OLD_API_PLUGIN)
    env = {"PYTHONPATH": str(tmp_path), "TUNESHIFT_PLUGINS": "ts_old", "TUNESHIFT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    rows = {r["name"] for r in json.loads(cli("plugins", "--json", env=env).stdout)}
    assert BUILTINS <= rows and "old-dedup" in rows


def test_hookimpl_is_exported():
    import pluggy

    assert isinstance(tuneshift.hookimpl, pluggy.HookimplMarker)
    assert tuneshift.hookimpl.project_name == "tuneshift"


def test_core_imports_no_model_library():
    import subprocess
    import sys

    code = ("import sys, tuneshift, tuneshift._cli, tuneshift._registry, tuneshift._pipeline, tuneshift._runner; "
            "heavy = {'torch', 'transformers', 'peft', 'litellm', 'sentence_transformers', 'faiss'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


COMMANDS = """
import click
import tuneshift

@tuneshift.hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("who")
    def greet(who):
        "Say hello."
        click.echo(f"hello {who}")
"""
BROKEN_COMMANDS = """
import tuneshift

@tuneshift.hookimpl
def register_commands(cli):
    raise RuntimeError("no commands today")
"""


def test_register_commands_adds_a_subcommand_and_a_broken_one_is_contained(cli, tmp_path):
    (tmp_path / "ts_cmds.py").write_text(COMMANDS)
    (tmp_path / "ts_badcmds.py").write_text(BROKEN_COMMANDS)
    env = {"PYTHONPATH": str(tmp_path), "TUNESHIFT_PLUGINS": "ts_cmds,ts_badcmds"}
    assert cli("greet", "world", env=env).stdout.strip() == "hello world"
    help_text = cli("--help", env=env)
    assert help_text.returncode == 0 and "greet" in help_text.stdout and "serve" in help_text.stdout
    rows = {r["name"]: r for r in json.loads(cli("plugins", "--json", env=env).stdout)}
    assert rows["ts_badcmds"]["status"] == "error: RuntimeError: no commands today"
