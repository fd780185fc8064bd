"""Which generator works where (issue 20): the tuneshift arm run with each expander, on either domain.

`tuneshift demo --generators magpie,agentic-ask` adds one arm per generator,
gen_<name>: the tuneshift arm with its expander section replaced and nothing
else changed (seeds, selector, trainer, rounds), so the report's generator
table compares the generators alone. The generator the preset already uses
(agentic) is the tuneshift arm itself and is not run twice.
`litellm-paraphrase` talks to a real `tuneshift serve` of the teacher's base
on loopback, started for its arm and stopped after it, as a user pointing it
at their own server would.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tuneshift.api import UsageError

PREFIX = "gen_"
SERVED = "base"
"""The model name `tuneshift serve` gives the teacher's base, and litellm asks for."""
GENERATORS: dict[str, dict[str, Any]] = {
    "agentic": {"use": "agentic"},  # the rule-based operators only: no model
    "agentic-ask": {"use": "agentic", "model": "base"},  # and the model-driven ask operator, the teacher's base
    "self-generate": {"use": "self-generate"},
    "magpie": {"use": "magpie"},
    "litellm-paraphrase": {"use": "litellm-paraphrase", "model": f"hosted_vllm/{SERVED}"},  # + api_base at run time
}
"""Each compared generator's expander section, with its defaults: what a user gets by naming it."""
PORT = 47631
"""The loopback port tried first, so a resumed arm finds the same endpoint in its config (its cache key)."""


def parse(text: str | None) -> list[str]:
    """--generators: names separated by commas, or `all`; an unknown name is refused before any work."""
    if not text:
        return []
    names = list(GENERATORS) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in GENERATORS]
    if unknown:
        raise UsageError(f"--generators: unknown {', '.join(unknown)}; known: {', '.join(GENERATORS)}, or all")
    return list(dict.fromkeys(names))


def own(settings: dict[str, Any]) -> str | None:
    """The compared generator the preset's tuneshift arm already runs, if it is one of them exactly."""
    section = settings.get("expander") or {"use": "agentic"}
    return next((n for n, s in GENERATORS.items() if s == section), None)


def arm_of(name: str, settings: dict[str, Any]) -> str:
    """The arm that runs generator `name`: the tuneshift arm when it is the preset's own, else gen_<name>."""
    return "tuneshift" if name == own(settings) else f"{PREFIX}{name}"


def generator_arms(settings: dict[str, Any]) -> tuple[str, ...]:
    """gen_<name> for each generator asked for, but the one the tuneshift arm already is."""
    arms = (arm_of(n, settings) for n in settings.get("generators") or [])
    return tuple(a for a in arms if a != "tuneshift")


def expander_of(arm: str, settings: dict[str, Any], api_base: str | None = None) -> dict[str, Any]:
    """The arm's expander section, with settings["generator_options"][name] over its defaults (smaller
    models need smaller requests), the litellm one pointed at the loopback server."""
    name = arm.removeprefix(PREFIX)
    section = {**GENERATORS[name], **(settings.get("generator_options") or {}).get(name, {})}
    if section["use"] == "litellm-paraphrase":
        section["api_base"] = api_base or f"http://127.0.0.1:{PORT}/v1"
    return section


def needs_server(arm: str) -> bool:
    return arm.startswith(PREFIX) and GENERATORS[arm.removeprefix(PREFIX)]["use"] == "litellm-paraphrase"


def _port() -> int:
    """PORT when it is free, else any free one."""
    for port in (PORT, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free loopback port")


@contextmanager
def loopback_server(model: str, wait: float = 180.0) -> Iterator[str]:
    """`tuneshift serve --model MODEL` on a loopback port until the block ends; yields its /v1 base url."""
    port = _port()
    command = [sys.executable, "-m", "tuneshift", "serve", "--model", model, "--name", SERVED, "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + wait
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tuneshift serve exited: {proc.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"tuneshift serve did not answer on {url} within {wait:.0f} s") from None
                time.sleep(0.5)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def table(arms: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """report.json's `generators`: accuracy mean +- std and pairs per generator asked for, and its arm."""
    out = {}
    for name in settings.get("generators") or []:
        arm = arm_of(name, settings)
        if arm in arms:
            out[name] = {"arm": arm, **{k: arms[arm][k] for k in ("accuracy", "std", "per_seed", "dataset_size")
                                        if k in arms[arm]}}
    return out


def markdown(report: dict[str, Any]) -> list[str]:
    rows = report.get("generators") or {}
    if not rows:
        return []
    lines = ["", f"Generators on this domain ({report.get('domain', 'organisation')}): the tuneshift arm with each "
                 "expander, the rest unchanged.", "", "| generator | accuracy | std | pairs | arm |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        pairs = r.get("dataset_size")
        lines.append(f"| {name} | {r['accuracy']:.3f} | {r['std']:.3f} | {'' if pairs is None else f'{pairs:g}'} "
                     f"| {r['arm']} |")
    return lines
