"""One package per deployed function; Lambda imports `functions.<name>.handler`.

Python imports this package first, so a function's init starts here: every
log line from now on is one JSON object (shared.logs), and on Lambda the
cyclic garbage collector is paused until the handler is built (see
shared.init_gc for why, and where it resumes).
"""

from shared import init_gc, logs

logs.configure()
init_gc.pause_in_lambda()
