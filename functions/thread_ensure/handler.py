"""thread-ensure: POST /chat/threads/ensure, creates or returns the 1:1 thread."""

from __future__ import annotations

from shared import container
from shared.chat.threads import EnsureThreadRequest, Thread, ensure_thread
from shared.http.app import create_app, lambda_handler
from shared.http.deps import CurrentUser, DatabaseDep

# Fail at cold start, naming any bad setting; build the verifier and the
# database client in init, which Lambda runs at full CPU (and SnapStart keeps).
container.configured(container.verifier, container.database)

app = create_app("thread-ensure", methods="POST")


@app.post("/chat/threads/ensure", response_model=Thread)
async def ensure(body: EnsureThreadRequest, caller: CurrentUser, db: DatabaseDep) -> Thread:
    """The caller's thread with another user: the same one on every call."""
    return ensure_thread(db, caller, body)


handler = lambda_handler(app)
