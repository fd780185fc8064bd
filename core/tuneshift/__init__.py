"""tuneshift: move a fine-tuned model's specialised knowledge into a new model.

Plugin authors need only `tuneshift.hookimpl` and the base classes in
`tuneshift.kinds`. Importing this package imports no model library.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("tuneshift")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

PLUGIN_API_VERSION = 1
"""The plugin API this tuneshift speaks; an implementation declaring another is not loaded."""

hookimpl = pluggy.HookimplMarker("tuneshift")

__all__ = ["hookimpl", "PLUGIN_API_VERSION", "__version__"]
