import tuneshift


@tuneshift.hookimpl
def register_expanders(register):
    from .paraphrase import LitellmParaphrase

    register(LitellmParaphrase)
