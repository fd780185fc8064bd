"""What every command gets from the command line: the plugins found, and the ones chosen with --plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneshift.kinds import Context, Implementation


class State:
    """The registry of installed implementations and the user's --plugin choices (--no-plugin already
    applied: a blocked implementation is never found)."""

    def __init__(self, registry: Any, selected: list[str], debug: bool = False) -> None:
        self.registry, self.selected, self.debug = registry, list(selected), debug
        registry.validate_selected(self.selected)

    def implementation(self, kind: str, name: str | None = None) -> type[Implementation]:
        """The class to use for `kind`: a --plugin of that kind, else `name`, else the default; a blocked or
        missing one is a usage error that names what is installed."""
        return self.registry.choose(kind, self.selected, name).cls

    def build(self, kind: str, context: Context, name: str | None = None, **options: Any) -> Implementation:
        """An instance of `implementation(kind, name)` with `options`; when --plugin replaced `name` (or the
        default) by another implementation, the options that one does not take are dropped."""
        cls = self.implementation(kind, name)
        if cls is not self.registry.choose(kind, [], name).cls:
            known = set(cls.Options.model_fields)
            options = {k: v for k, v in options.items() if k in known}
        return cls(cls.Options(**options), context)

    @property
    def observers(self) -> Any:
        """The observer hooks, each plugin's call guarded: `state.observers.on_progress(stage=..., advance=n)`."""
        return self.registry.observers

    def named(self, kind: str, name: str) -> type[Implementation]:
        """The implementation called `name` itself, whatever --plugin chose (a comparison of several needs
        each); a blocked one is a usage error."""
        entry = self.registry.find(name, f"the {kind}")
        if entry.kind != kind:
            from tuneshift._errors import UsageError

            raise UsageError(f"plugin {name!r} is a {entry.kind}, not a {kind}")
        return entry.cls


def output_path(value: str | None, flag: str) -> Path | None:
    """An output path as typed; an empty one is refused (it would mean the current directory)."""
    if value is not None and not value.strip():
        from tuneshift._errors import UsageError

        raise UsageError(f"{flag}: an empty path; give a directory")
    return Path(value) if value is not None else None
