from tuneshift.api import hookimpl


@hookimpl
def register_expanders(register):
    from .paraphrase import LitellmParaphrase

    register(LitellmParaphrase)
