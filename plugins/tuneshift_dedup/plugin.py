import tuneshift


@tuneshift.hookimpl
def register_dedupers(register):
    from .exact import ExactDedup

    register(ExactDedup)
