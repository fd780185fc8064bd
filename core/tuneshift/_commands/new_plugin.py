"""`tuneshift new-plugin NAME`: copy plugin_template/ with the names filled in.

Template lines tagged `# [kind: K]` (one line) or blocks between a bare
`# [kind: K]` line and `# [end kind]` are kept only when kind K is wanted.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import click

from tuneshift._errors import UsageError

TEMPLATE = Path(__file__).resolve().parents[3] / "plugin_template"
TEMPLATE_KINDS = ("expander", "scorer")
MARK = re.compile(r"#\s*\[kind: (\w+)\]")
END = re.compile(r"^\s*#\s*\[end kind\]\s*$")


def keep_kinds(text: str, kinds: set[str]) -> str:
    out, dropping = [], False
    for line in text.splitlines(keepends=True):
        mark = MARK.search(line)
        if END.match(line):
            dropping = False
        elif mark and not line[: mark.start()].strip():  # a bare marker opens a block
            dropping = mark.group(1) not in kinds
        elif mark:  # a tagged line
            if mark.group(1) in kinds:
                out.append(line[: mark.start()].rstrip() + "\n")
        elif not dropping:
            out.append(line)
    return re.sub(r"\n{4,}", "\n\n\n", "".join(out))


def names(name: str) -> dict[str, str]:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-").removeprefix("tuneshift-")
    if not slug or not slug[0].isalpha():
        raise UsageError(f"new-plugin {name!r}: a name starts with a letter, for example 'my-generator'")
    snake = slug.replace("-", "_")
    camel = "".join(part.capitalize() for part in slug.split("-"))
    return {"tuneshift_example": f"tuneshift_{snake}", "tuneshift-example": f"tuneshift-{slug}",
            "example-expander": f"{slug}-expander", "example-scorer": f"{slug}-scorer",
            "ExampleExpander": f"{camel}Expander", "ExampleScorer": f"{camel}Scorer",
            'example = "tuneshift_': f'{slug} = "tuneshift_'}


def render(name: str, kind: str, out_parent: Path) -> Path:
    """Write the new distribution to OUT_PARENT/tuneshift-SLUG; return its path."""
    if not TEMPLATE.is_dir():
        raise UsageError("new-plugin needs tuneshift's source checkout (plugin_template/ was not found)")
    mapping = names(name)
    kinds = set(TEMPLATE_KINDS) if kind == "all" else {kind}
    target = out_parent / mapping["tuneshift-example"]
    if target.exists():
        raise UsageError(f"new-plugin: {target} already exists")
    out_parent.mkdir(parents=True, exist_ok=True)
    # a fresh, uniquely named staging folder: nothing of the user's is ever in it, or removed with it
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=out_parent)) / "tree"
    shutil.copytree(TEMPLATE, staging, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    for dropped in set(TEMPLATE_KINDS) - kinds:
        (staging / "tuneshift_example" / f"{dropped}.py").unlink()
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            text = keep_kinds(path.read_text(encoding="utf-8"), kinds)
            for old, new in mapping.items():
                text = text.replace(old, new)
            path.write_text(text, encoding="utf-8")
    (staging / "tuneshift_example").rename(staging / mapping["tuneshift_example"])
    staging.rename(target)
    staging.parent.rmdir()
    return target


@click.command("new-plugin")
@click.argument("name")
@click.option("--kind", type=click.Choice(["expander", "scorer", "all"]), default="all", show_default=True)
@click.option("--out", "out_parent", type=click.Path(path_type=Path), default=Path("."), show_default=True)
def command(name: str, kind: str, out_parent: Path) -> None:
    """Create a new plugin distribution from plugin_template/, with NAME filled in."""
    target = render(name, kind, out_parent)
    click.echo(f"created {target}; next: pip install -e {target} && tuneshift plugins")
