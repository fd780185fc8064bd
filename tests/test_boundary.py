"""The plugin boundary: plugins import `tuneshift.api` and nothing else of tuneshift, and one built-in plugin
uses another only through its one shared module (`tuneshift_hf.shared`)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_TREES = [ROOT / "plugins", ROOT / "plugin_template"]
SHARED = {"tuneshift_hf.shared"}
"""The modules of one plugin that another may import."""


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, those inside functions too."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            if node.module == "tuneshift":  # `from tuneshift import x` reaches tuneshift.x
                out[-1:] = [(node.lineno, f"tuneshift.{alias.name}") for alias in node.names]
    return out


def packages(root: Path) -> set[str]:
    """The import packages a plugin tree or distribution defines (beside it, or under its src/)."""
    return {d.name for base in (root, root / "src") if base.is_dir() for d in base.iterdir()
            if d.name.startswith("tuneshift_") and (d / "__init__.py").is_file()}


def own_packages(path: Path, tree: Path) -> set[str]:
    """What a file may import freely: its own package, or its distribution's (tests of a distribution)."""
    if (tree / "pyproject.toml").is_file():  # a distribution of its own: plugin_template/
        return packages(tree)
    first = tree / path.relative_to(tree).parts[0]
    if first.name.startswith("tuneshift_"):  # a built-in plugin package: plugins/tuneshift_hf/...
        return {first.name}
    return packages(first)  # a distribution inside plugins/: plugins/tuneshift-vllm/...


def violations(trees: list[Path]) -> list[str]:
    files = [f for tree in trees for f in sorted(tree.rglob("*.py"))]
    plugin_packages = set().union(*(packages(tree) | packages(tree / "tuneshift-vllm") for tree in trees))
    plugin_packages |= {"tuneshift_vllm", "tuneshift_example"}
    found = []
    for tree in trees:
        for path in sorted(tree.rglob("*.py")):
            own = own_packages(path, tree)
            for line, module in imports(path):
                top = module.split(".")[0]
                where = f"{path.relative_to(tree.parent)}:{line}"
                if top == "tuneshift" and module != "tuneshift.api":
                    found.append(f"{where}: imports {module}; plugins import tuneshift.api only")
                elif top in plugin_packages and top not in own and module not in SHARED:
                    found.append(f"{where}: imports {module}, the insides of another plugin; use "
                                 f"{' or '.join(sorted(SHARED))} or tuneshift.api")
    assert files, "no plugin files found"
    return found


def test_plugins_import_only_the_api():
    assert violations(PLUGIN_TREES) == []


def test_a_planted_violation_is_found(tmp_path):
    plugins = tmp_path / "plugins"
    (plugins / "tuneshift_a").mkdir(parents=True)
    (plugins / "tuneshift_b").mkdir()
    (plugins / "tuneshift_a" / "__init__.py").write_text("")
    (plugins / "tuneshift_b" / "__init__.py").write_text("")
    (plugins / "tuneshift_a" / "good.py").write_text("from tuneshift.api import Scorer\nfrom . import good\n")
    (plugins / "tuneshift_a" / "bad.py").write_text(
        "import tuneshift\n"
        "def f():\n    from tuneshift._rundir import write_json\n    from tuneshift import _config\n"
        "    from tuneshift_b.inner import helper\n")
    found = violations([plugins])
    assert [v.split(": ", 1)[0] for v in found] == ["plugins/tuneshift_a/bad.py:1", "plugins/tuneshift_a/bad.py:3",
                                                    "plugins/tuneshift_a/bad.py:4", "plugins/tuneshift_a/bad.py:5"]
    assert "tuneshift_b.inner, the insides of another plugin" in found[-1]


def test_the_api_names_what_it_exports():
    import tuneshift.api as api

    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert missing == []
    assert api.API_VERSION == 2


def test_help_and_version_import_no_model_library():
    """`tuneshift --version` loads no plugin; `tuneshift --help` loads the plugins (it lists their commands),
    and none of them imports a model library to be listed."""
    code = ("import contextlib, io, json, sys\nfrom tuneshift._cli import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out): code = main(sys.argv[1:])\n"
            "print(json.dumps({'code': code, 'modules': sorted(sys.modules), 'stdout': out.getvalue()}))")
    heavy = {"torch", "transformers", "peft", "sentence_transformers", "litellm", "vllm", "faiss"}
    for flag, loads_plugins in (("--version", False), ("--help", True)):
        result = subprocess.run([sys.executable, "-c", code, flag], capture_output=True, text=True, check=True)
        seen = json.loads(result.stdout.splitlines()[-1])
        assert seen["code"] == 0
        assert heavy & set(seen["modules"]) == set(), flag
        assert ("tuneshift_hf.plugin" in seen["modules"]) == loads_plugins, flag
        assert ("demo" in seen["stdout"] and "serve" in seen["stdout"]) == loads_plugins, flag  # plugins' commands
