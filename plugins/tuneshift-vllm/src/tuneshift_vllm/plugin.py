"""Entry-point module: the classes load inside the hooks, so a broken import is this plugin's error only."""

from __future__ import annotations

from tuneshift.api import Register, hookimpl


@hookimpl
def register_scorers(register: Register) -> None:
    from .scorer import VLLMScorer

    register(VLLMScorer)


@hookimpl
def register_answerers(register: Register) -> None:
    from .answerer import VLLMAnswerer

    register(VLLMAnswerer)
