"""`tuneshift config show CONFIG`: the config as a run would use it, every default filled in.

A user sees what `tuneshift run` will do before it does it: the core sections
with their defaults, and for each kind the implementation that --plugin, `use`
or the default picks, with all of its options. Secrets are redacted; nothing
is loaded or written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import tomli_w
from pydantic import ValidationError

from tuneshift import _config as config
from tuneshift._commands.state import State
from tuneshift._errors import UsageError
from tuneshift.kinds import KINDS


def resolved(state: State, config_path: Path, overrides: list[str]) -> dict[str, Any]:
    """The whole config: core sections validated with defaults, each kind's section as its implementation
    reads it (`use` names the implementation chosen)."""
    raw = config.load(config_path, overrides)
    out: dict[str, Any] = config.validate_core(raw).model_dump(mode="json")
    for kind in KINDS:
        if kind == "trainer" and out.get("target") is None:
            continue
        use, options = config.kind_section(raw, kind)
        cls = state.implementation(kind, use)
        options, _ = state.fitting(kind, cls, use, options)
        try:
            validated = cls.Options.model_validate(options)
        except ValidationError as exc:
            raise UsageError(f"config: {config.describe(exc, kind)} (for plugin {cls.name})") from None
        out[kind] = {"use": cls.name, **validated.model_dump(mode="json")}
    return config.redact(out)


def drop_none(value: Any) -> Any:
    """TOML has no null: unset keys are left out."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    return value


@click.group("config")
def command() -> None:
    """Inspect a run's config."""


@command.command("show")
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (unset keys as null) instead of TOML.")
@click.pass_obj
def show(state: State, config_path: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Print CONFIG resolved: every default filled in, the implementation of each kind, secrets redacted."""
    values = resolved(state, config_path, list(overrides))
    click.echo(json.dumps(values, indent=2) if as_json else tomli_w.dumps(drop_none(values)), nl=as_json)
