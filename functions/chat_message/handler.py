"""chat-message: POST /chat/messages, posts a message as the caller."""

from __future__ import annotations

from fastapi import Response

from shared import container
from shared.chat.messages import Message, PostMessageRequest, post_message
from shared.http.app import create_app, lambda_handler
from shared.http.deps import CurrentUser, DatabaseDep

# Fail at cold start, naming any bad setting; build the verifier and the
# database client in init, which Lambda runs at full CPU (and SnapStart keeps).
container.configured(container.verifier, container.database)

app = create_app("chat-message", methods="POST")


@app.post("/chat/messages", response_model=Message, status_code=201)
async def post(
    body: PostMessageRequest, caller: CurrentUser, db: DatabaseDep, response: Response
) -> Message:
    """Stores the message: 201, or 200 with the first row when client_id was seen."""
    stored = post_message(db, caller, body)
    if stored.replayed:
        response.status_code = 200
    return stored.message


handler = lambda_handler(app)
