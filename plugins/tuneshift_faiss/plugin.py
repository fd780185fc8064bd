from tuneshift.api import hookimpl


@hookimpl
def register_dedupers(register):
    from .dedup import StFaissDedup

    register(StFaissDedup)
