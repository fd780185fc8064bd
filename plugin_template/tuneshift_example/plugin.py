"""The plugin module named by the `tuneshift` entry point: one hook per kind it adds.

The classes are imported inside the hooks, as the built-ins do, so a broken
import shows up as this plugin's error in `tuneshift plugins` instead of
breaking the CLI.
"""

from __future__ import annotations

from tuneshift.api import Register, hookimpl


# [kind: expander]
@hookimpl
def register_expanders(register: Register) -> None:
    from .expander import ExampleExpander

    register(ExampleExpander)
# [end kind]


# [kind: scorer]
@hookimpl
def register_scorers(register: Register) -> None:
    from .scorer import ExampleScorer

    register(ExampleScorer)
# [end kind]
