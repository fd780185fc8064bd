"""Find plugins by entry point, collect their implementations, and pick one per kind.

Every load and every registration is guarded: a plugin that fails is listed
with its error and the rest keeps working.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points, packages_distributions, version
from typing import Any, Mapping

import pluggy

from tuneshift import PLUGIN_API_VERSION, _commands, hookspecs
from tuneshift._errors import UsageError
from tuneshift.kinds import KIND_CLASSES, KINDS, Implementation

GROUP = "tuneshift"
MAIN_DISTRIBUTION = "tuneshift"
CORE_COMMANDS = "tuneshift-commands"


@dataclass
class Entry:
    """One line of `tuneshift plugins`: an implementation, or a plugin that failed."""

    name: str
    kind: str
    distribution: str
    version: str
    builtin: bool
    status: str
    cls: type[Implementation] | None = None
    description: str = ""

    def as_json(self) -> dict[str, Any]:
        """The entry, with its options' JSON schema (names, types, defaults, descriptions) when it loaded."""
        out = {k: v for k, v in self.__dict__.items() if k != "cls"}
        if self.cls is not None:
            try:
                out["options"] = self.cls.Options.model_json_schema()
            except Exception as exc:  # a plugin's options that pydantic cannot describe: say so, list the rest
                out["options"] = {"error": _one_line(exc)}
        return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"error: {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@functools.lru_cache(maxsize=None)
def _distributions() -> Mapping[str, list[str]]:
    """Top-level module -> distributions: one scan of the installed metadata per process, not one per
    implementation (each scan reads every distribution's file list: seconds, at every command's start)."""
    return packages_distributions()


@functools.lru_cache(maxsize=None)
def _distribution_of(module_name: str) -> tuple[str, str]:
    top = module_name.split(".")[0]
    names = _distributions().get(top, [])
    if not names:
        return ("(local)", "")
    return names[0], version(names[0])


class Observers:
    """The observer hooks (`on_run_start`, `on_progress`, ...), called like `pm.hook`, but each plugin's
    call guarded like its registration: one that raises is reported once, as a warning, and hears no
    more events of this command; the run goes on."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm, self.failed = pm, set()

    def __getattr__(self, name: str) -> Any:
        hook = getattr(self._pm.hook, name)

        def call(**kwargs: Any) -> None:
            for impl in reversed(hook.get_hookimpls()):  # pluggy's order: the last registered first
                if impl.plugin_name in self.failed:
                    continue
                try:
                    impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
                except Exception as exc:
                    self.failed.add(impl.plugin_name)
                    warnings.warn(f"plugin {impl.plugin_name}: {name} failed ({_one_line(exc)}); it hears no more "
                                  "events of this command", stacklevel=2)
        return call


class Registry:
    """The plugin manager plus every implementation it found, by name."""

    def __init__(self, blocked: tuple[str, ...] = ()) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.blocked = set(blocked)
        self.entries: list[Entry] = []
        self.observers = Observers(self.pm)
        self.pm.register(_commands, name=CORE_COMMANDS)  # run, score, train, ...: commands like any plugin's
        self._load()
        self.pm.check_pending()
        self._collect()
        self._check_blocked()

    # -- loading --------------------------------------------------------------

    def _load(self) -> None:
        autoload = not os.environ.get("TUNESHIFT_DISABLE_PLUGIN_AUTOLOAD")
        for ep in entry_points(group=GROUP):
            dist = ep.dist.name if ep.dist else "(unknown)"
            if ep.name in self.blocked or self.pm.has_plugin(ep.name):
                continue
            if not autoload and dist != MAIN_DISTRIBUTION:
                continue
            try:
                self.pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a broken plugin must never break the CLI
                ver = ep.dist.version if ep.dist else ""
                self._fail(ep.name, dist, ver, _one_line(exc))
        for module_name in filter(None, os.environ.get("TUNESHIFT_PLUGINS", "").split(",")):
            module_name = module_name.strip()
            if module_name in self.blocked or self.pm.has_plugin(module_name):
                continue
            try:
                self.pm.register(importlib.import_module(module_name), name=module_name)
            except Exception as exc:
                self._fail(module_name, *_distribution_of(module_name), _one_line(exc))

    def _fail(self, name: str, dist: str, ver: str, status: str) -> None:
        self.entries.append(Entry(name, "unknown", dist, ver, dist == MAIN_DISTRIBUTION, status))

    def _collect(self) -> None:
        for kind in KINDS:
            hook = getattr(self.pm.hook, f"register_{kind}s")
            for impl in hook.get_hookimpls():
                found: list[type[Implementation]] = []
                try:
                    impl.function(register=found.append)
                except Exception as exc:
                    self._fail(impl.plugin_name, *_distribution_of(impl.plugin.__name__), _one_line(exc))
                    continue
                for cls in found:
                    self._add(kind, cls)

    def _add(self, kind: str, cls: type[Implementation]) -> None:
        name = getattr(cls, "name", None) or getattr(cls, "__name__", "?")
        dist, ver = _distribution_of(cls.__module__)
        entry = Entry(name, kind, dist, ver, dist == MAIN_DISTRIBUTION, "ok", cls, getattr(cls, "description", ""))
        base = KIND_CLASSES[kind]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            entry.status = f"error: registered as {kind} but is not a tuneshift.kinds.{base.__name__}"
        elif getattr(cls, "api_version", None) != PLUGIN_API_VERSION:
            entry.status = (
                f"error: written for plugin API {getattr(cls, 'api_version', None)}, "
                f"this tuneshift speaks {PLUGIN_API_VERSION}"
            )
        elif any(e.name == name and e.status == "ok" for e in self.entries):
            other = next(e for e in self.entries if e.name == name)
            entry.status = f"error: name {name!r} is already taken by {other.distribution}"
        if entry.status != "ok":
            entry.cls = None
        elif name in self.blocked:
            entry.status = "blocked"
            entry.cls = None
        self.entries.append(entry)

    def _check_blocked(self) -> None:
        known = self.known_names()
        for name in self.blocked:
            if name not in known:
                raise UsageError(unknown_name_message("--no-plugin", name, known))

    def add_commands(self, group: Any) -> None:
        """Let each plugin add CLI commands; one that fails is listed with its error, the CLI goes on."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=group)
            except Exception as exc:
                self._fail(impl.plugin_name, *_distribution_of(impl.plugin.__name__), _one_line(exc))

    # -- lookup ---------------------------------------------------------------

    def known_names(self) -> set[str]:
        return {e.name for e in self.entries} | {ep.name for ep in entry_points(group=GROUP)}

    def usable(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind and e.cls is not None]

    def find(self, name: str, where: str = "--plugin") -> Entry:
        """The implementation called `name`, or a usage error naming the closest names.

        `where` says where the name came from (`--plugin`, or a config key), so the message points there."""
        for entry in self.entries:
            if entry.name == name and entry.kind != "unknown":
                if entry.cls is None:
                    raise UsageError(f"plugin {name!r} cannot be used: {entry.status}")
                return entry
        for entry in self.entries:
            if entry.name == name:
                raise UsageError(f"plugin {name!r} cannot be used: {entry.status}")
        raise UsageError(unknown_name_message(where, name, self.known_names()))

    def choose(self, kind: str, selected: list[str], configured: str | None) -> Entry:
        """The implementation of `kind`: a --plugin of that kind, else the config's `use`, else the default."""
        for name in selected:
            entry = self.find(name)
            if entry.kind == kind:
                return entry
        if configured:
            entry = self.find(configured, f"config: {kind}.use =")
            if entry.kind != kind:
                raise UsageError(f"{kind}.use = {configured!r} names a {entry.kind}, not a {kind}")
            return entry
        usable = self.usable(kind)
        if not usable:
            raise UsageError(f"no usable {kind} is installed (see `tuneshift plugins`)")
        defaults = [e for e in usable if getattr(e.cls, "default", False) and e.builtin]
        return (defaults or usable)[0]

    def validate_selected(self, selected: list[str]) -> None:
        for name in selected:
            self.find(name)


def unknown_name_message(flag: str, name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(known))}"
    return f"{flag} {name}: no such plugin{hint}"
