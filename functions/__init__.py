"""One package per deployed function; Lambda imports `functions.<name>.handler`.

Python imports this package first, so a function's init starts here: on
Lambda, the cyclic garbage collector is paused until the handler is built
(see shared.init_gc for why, and where it resumes).
"""

from shared import init_gc

init_gc.pause_in_lambda()
