"""Python's cyclic garbage collector during a function's init.

Init allocates tens of thousands of objects that live as long as the
process (modules, classes, FastAPI's routes, pydantic's validators) and
almost no garbage (a few hundred objects). The collector, run by allocation
counts, traverses them again and again while they load: about 20 ms, some
5 % of a cold start, on the benchmark machine (`gc.callbacks` around the
import of a handler).

So `functions/__init__.py`, which Python imports before any function's
modules, pauses it when Lambda's runtime is loading the function (any other
importer, tests or the dev server, keeps its collector as it is), and the
function resumes it once its handler is built,
after `gc.freeze()`: what init made moves to the permanent generation,
which later full collections (on warm requests) no longer traverse either.
The garbage init left is frozen with it and never freed: a few hundred
objects, against the 15-20 ms a collection would cost here.
"""

from __future__ import annotations

import gc
import os

_paused = False


def pause_in_lambda() -> None:
    """`pause`, when Lambda's runtime (which sets AWS_LAMBDA_FUNCTION_NAME)
    is loading the function."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        pause()


def pause() -> None:
    """Stops automatic collection until `resume`, if it was on."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Freezes what exists now and turns collection back on if `pause` turned
    it off; a no-op on every later call (more handlers in one process)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
