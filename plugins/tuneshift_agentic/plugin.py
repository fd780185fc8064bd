from tuneshift.api import hookimpl


@hookimpl
def register_expanders(register):
    from .agent import Agentic

    register(Agentic)
