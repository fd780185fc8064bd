import tuneshift


@tuneshift.hookimpl
def register_dedupers(register):
    from .dedup import StFaissDedup

    register(StFaissDedup)
