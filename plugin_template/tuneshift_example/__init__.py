"""tuneshift-example: a template for third-party tuneshift plugins.

It adds one expander (`example-expander`) and one scorer (`example-scorer`).
Nothing here imports a model library at import time, so `tuneshift plugins`
stays fast; see plugin.py for how the classes are registered.
"""
