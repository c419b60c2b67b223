"""`make demo`: a short conversation against a running `make dev`, narrated.

Ada fetches her token, ensures her thread with Bob and writes to him (once
retried with the same client id), Bob reads the thread, Ada speaks in the
space and the bot's reply streams in; last, the thread channel's broadcasts.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import httpx
import psycopg

from infra.dev.stack import NoStack, find, port_from_env
from scripts.dev_tokens import USERS, access_token, session_cookie


def show(step: str, sent: str, status: int | str, got: Any) -> None:
    text = got if isinstance(got, str) else json.dumps(got, default=str)
    if len(text) > 160:
        text = text[:157] + "..."
    print(f"\n\033[1m{step}\033[0m\n  -> {sent}\n  <- {status} {text}", flush=True)


def as_user(conn: psycopg.Connection[Any], mongo_id: str) -> None:
    """What PostgREST does for a request with this user's token."""
    claims = {"sub": USERS[mongo_id], "role": "authenticated", "aud": "authenticated"}
    conn.execute("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
                 (json.dumps(claims),))  # fmt: skip


def main() -> int:
    try:
        stack = find(port_from_env())
    except NoStack as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 1
    print(f"make dev on {stack.api_url} (published in {stack.path})", flush=True)
    ada = {"Authorization": f"Bearer {access_token('ada')}"}
    with (
        httpx.Client(base_url=stack.api_url, timeout=10) as http,
        psycopg.connect(stack.database_url) as db,
    ):
        r = http.get(
            "/auth/token",
            headers={"Cookie": session_cookie("ada"), "Origin": "http://localhost:5173"},
        )
        body = r.json()
        show("1. Ada's browser fetches her access token", "GET /auth/token (session cookie)", r.status_code,
             {"token": body["access_token"][:20] + "...", "user": body["user"],
              "cors": r.headers.get("access-control-allow-origin")})  # fmt: skip

        # A session of its own (the demo page's sign-in), so each run has a
        # refresh token to spend: the local GoTrue rotates them, as GoTrue does.
        signed_in = httpx.post(f"{stack.page_url}/dev/sign-in?expires_in=20", json={"user": "ada"},
                               timeout=10)  # fmt: skip
        expiring = "; ".join(f"{name}={value}" for name, value in signed_in.cookies.items())
        r = http.get("/auth/token", headers={"Cookie": expiring})
        rewritten = [c.split(";")[0].split("=")[0] for c in r.headers.get_list("set-cookie")]
        show("1b. With a session about to expire, it is refreshed (local GoTrue)", "GET /auth/token (expiring cookie)",
             r.status_code, {"new token": r.json()["access_token"][:20] + "...", "cookies rewritten": rewritten})  # fmt: skip

        r = http.post("/chat/threads/ensure", headers=ada, json={"other_mongo_id": "bob"})
        thread_id = r.json()["thread_id"]
        show("2. Ada opens her thread with Bob", 'POST /chat/threads/ensure {"other_mongo_id": "bob"}',
             r.status_code, r.json())  # fmt: skip

        client_id = str(uuid.uuid4())
        message = {
            "thread_id": thread_id,
            "body": f"Hi Bob! ({time.strftime('%H:%M:%S')})",
            "client_id": client_id,
        }
        first = http.post("/chat/messages", headers=ada, json=message)
        show("3. Ada writes to Bob", f"POST /chat/messages {json.dumps(message)}", first.status_code,
             {"id": first.json()["id"], "body": first.json()["body"]})  # fmt: skip
        retry = http.post("/chat/messages", headers=ada, json=message)
        show("4. The same send, retried (same client_id)", "POST /chat/messages (again)", retry.status_code,
             {"same id": retry.json()["id"] == first.json()["id"]})  # fmt: skip

        with db.transaction(force_rollback=True):
            as_user(db, "bob")
            rows = db.execute("select sender_mongo_id, body from public.chat_messages where thread_id = %s"
                              " order by created_at desc limit 3", (thread_id,)).fetchall()  # fmt: skip
        show(
            "5. Bob reads the thread (through RLS, as PostgREST would)",
            f"select ... from chat_messages where thread_id = '{thread_id}'",  # noqa: S608 (printed, not run)
            "ok",
            rows,
        )

        said = f"/msg-demo-{uuid.uuid4().hex[:8]}"
        with db.transaction():
            as_user(db, "ada")
            db.execute(
                "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
                " values (%s, 'Message from Ada', 'utterance', '@ada', '#lounge', 'complete', %s)",
                (said, json.dumps({"text": "Hello Echo, are you there?"})),
            )
        show("6. Ada speaks in #lounge (through RLS, as PostgREST would)", "insert into intentions ...", "ok",
             {"id": said, "text": "Hello Echo, are you there?"})  # fmt: skip

        print("\n\033[1m7. The bot's reply streams in\033[0m", flush=True)
        seen, deadline, state_now = "", time.time() + 60, None
        while time.time() < deadline and state_now not in ("complete", "failed"):
            with db.transaction(force_rollback=True):
                as_user(db, "bob")
                row = db.execute("select state, content->>'text' from public.intentions"
                                 " where content->>'in_reply_to' = %s and type = 'utterance'", (said,)).fetchone()  # fmt: skip
            if row and (row[1] != seen or row[0] != state_now):
                state_now, seen = row
                print(f"  [{state_now:8}] {seen}", flush=True)
            time.sleep(0.1)
        if state_now != "complete":
            print("  the bot did not answer in time", flush=True)
            return 1

        rows = db.execute("select event, payload->'record'->>'body' from realtime.messages where topic = %s"
                          " order by inserted_at", (f"chat:{thread_id}",)).fetchall()  # fmt: skip
        db.rollback()
        show(f"8. Broadcasts on the private channel chat:{thread_id}", "select ... from realtime.messages",
             "ok", [f"{e}: {b}" for e, b in rows])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
