"""What every command gets from the command line: the plugins found, and the ones chosen with --plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneshift._errors import UsageError
from tuneshift.kinds import Context, Implementation


class State:
    """The registry of installed implementations and the user's --plugin choices (--no-plugin already
    applied: a blocked implementation is never found)."""

    def __init__(self, registry: Any, selected: list[str], debug: bool = False) -> None:
        self.registry, self.selected, self.debug = registry, list(selected), debug
        registry.validate_selected(self.selected)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """A State crosses to another process (multiprocessing's spawn) as the user's choices: that process
        finds the installed plugins anew, with the same --plugin and --no-plugin."""
        return found_anew, (tuple(sorted(self.registry.blocked)), tuple(self.selected), self.debug)

    def without(self, *names: str) -> "State":
        """The same choices with plugins `names` blocked too (a second process that shows no progress bars
        is `state.without("progress")`)."""
        return found_anew(tuple(sorted(set(self.registry.blocked) | set(names))), tuple(self.selected), self.debug)

    def implementation(self, kind: str, name: str | None = None) -> type[Implementation]:
        """The class to use for `kind`: a --plugin of that kind, else `name`, else the default; a blocked or
        missing one is a usage error that names what is installed."""
        return self.registry.choose(kind, self.selected, name).cls

    def build(self, kind: str, context: Context, name: str | None = None, **options: Any) -> Implementation:
        """An instance of `implementation(kind, name)` with `options` (less those meant for another, see
        `fitting`)."""
        cls = self.implementation(kind, name)
        options, _ = self.fitting(kind, cls, name, options)
        return cls(cls.Options(**options), context)

    def meant(self, kind: str, name: str | None) -> str | None:
        """What `name` (or the default) names without --plugin; a bad `name` is a usage error, no usable
        default is None."""
        if name:
            return self.registry.choose(kind, [], name).name
        try:
            return self.registry.choose(kind, [], None).name
        except UsageError:
            return None

    def fitting(self, kind: str, cls: type[Implementation], name: str | None,
                options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """`options` for `cls`, and the keys set aside: when --plugin replaced `name` (or the default) by
        `cls`, the options were written for the other one, and those `cls` does not take are dropped."""
        if cls.name == self.meant(kind, name):
            return dict(options), []
        known = set(cls.Options.model_fields)
        return {k: v for k, v in options.items() if k in known}, sorted(set(options) - known)

    @property
    def observers(self) -> Any:
        """The observer hooks, each plugin's call guarded: `state.observers.on_progress(stage=..., advance=n)`."""
        return self.registry.observers

    def named(self, kind: str, name: str) -> type[Implementation]:
        """The implementation called `name` itself, whatever --plugin chose (a comparison of several needs
        each); a blocked one is a usage error."""
        entry = self.registry.find(name, f"the {kind}")
        if entry.kind != kind:
            raise UsageError(f"plugin {name!r} is a {entry.kind}, not a {kind}")
        return entry.cls


def found_anew(blocked: tuple[str, ...], selected: tuple[str, ...], debug: bool) -> State:
    """A State whose registry is discovered again from the entry points, `blocked` left out."""
    from tuneshift._registry import Registry

    return State(Registry(blocked=blocked), list(selected), debug)


def output_path(value: str | None, flag: str) -> Path | None:
    """An output path as typed; an empty one is refused (it would mean the current directory)."""
    if value is not None and not value.strip():
        raise UsageError(f"{flag}: an empty path; give a directory")
    return Path(value) if value is not None else None
