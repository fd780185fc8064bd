from tuneshift.api import hookimpl


@hookimpl
def register_dedupers(register):
    from .exact import ExactDedup

    register(ExactDedup)
