"""tuneshift: move a fine-tuned model's specialised knowledge into a new model.

Plugins import `tuneshift.api` and nothing else of this package: every module
with a leading underscore is private. Importing this package imports no model
library.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("tuneshift")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

PLUGIN_API_VERSION = 2
"""The version of `tuneshift.api` (2: the api module; 1: plugins imported the core's modules); an
implementation declaring another is not loaded."""

hookimpl = pluggy.HookimplMarker("tuneshift")

__all__ = ["hookimpl", "PLUGIN_API_VERSION", "__version__"]
