"""`make dev`: the whole product on this machine, with no Supabase project,
no AWS account and no internet.

A private PostgreSQL under .local/dev (kept between runs), the schema and a
demo seed, all five functions served over HTTP through the same Lambda
entry points, a webhook deliverer in place of pg_net's worker and a queue in
place of SQS. Ctrl-C stops it all.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from infra.dev.auth import LocalAuth
from infra.dev.platform import LocalQueue, WebhookDeliverer
from infra.dev.web.hook import FrontEnd, allow_page_origin, start_front_end
from infra.local.cluster import PgCluster
from infra.local.schema import apply_schema

ROOT = Path(__file__).resolve().parents[2]
DEV = Path(__file__).resolve().parent
ROUTES = {
    ("POST", "/webhooks/bot-trigger"): "bot_trigger",
    ("GET", "/auth/token"): "token",
    ("OPTIONS", "/auth/token"): "token",
    ("POST", "/chat/threads/ensure"): "thread_ensure",
    ("OPTIONS", "/chat/threads/ensure"): "thread_ensure",
    ("POST", "/chat/messages"): "chat_message",
    ("OPTIONS", "/chat/messages"): "chat_message",
}


def say(message: str) -> None:
    print(f"\033[1m==>\033[0m {message}", flush=True)


def load_local_env() -> None:
    for line in (DEV / "local.env").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            os.environ.setdefault(key, value)


def api_gateway_event(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    """The request as API Gateway's HTTP API (payload 2.0) hands it to Lambda."""
    lowered: dict[str, str] = {}
    for key, value in headers.items():
        lowered[key.lower()] = (
            f"{lowered[key.lower()]},{value}" if key.lower() in lowered else value
        )
    cookies = [c.strip() for c in lowered.pop("cookie", "").split(";") if c.strip()]
    lowered.setdefault("x-forwarded-proto", "http")
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": f"{method} {path}", "rawPath": path, "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": lowered.get("host", "127.0.0.1"),
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": lowered.get("user-agent", "")},
            "requestId": str(uuid.uuid4()), "routeKey": f"{method} {path}", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()), "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }  # fmt: skip
    if cookies:
        event["cookies"] = cookies
    if body:
        event["body"] = body.decode("utf-8", errors="replace")
    return event


def make_handler(handlers: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002
            logging.getLogger("dev.http").info("%s %s", self.command, self.path)

        def _send(
            self, status: int, headers: dict[str, str], cookies: list[str], body: bytes
        ) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "connection"):
                    self.send_header(key, value)
            for cookie in cookies:
                self.send_header("Set-Cookie", cookie)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if (self.command, path) == ("GET", "/"):
                ready = {"status": "ready", "routes": sorted({f"{m} {p}" for m, p in ROUTES})}
                self._send(
                    200, {"Content-Type": "application/json"}, [], json.dumps(ready).encode()
                )
                return
            function = ROUTES.get((self.command, path))
            if function is None:
                error = {
                    "error": {"code": "not_found", "message": f"no route {self.command} {path}"}
                }
                self._send(
                    404, {"Content-Type": "application/json"}, [], json.dumps(error).encode()
                )
                return
            event = api_gateway_event(self.command, path, query, dict(self.headers.items()), body)
            response = handlers[function](event, None)
            payload = response.get("body") or ""
            data = (
                base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
            )
            self._send(response["statusCode"], response.get("headers") or {},
                       list(response.get("cookies") or []), data)  # fmt: skip

        do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = _serve

    return Handler


def banner(port: int, database_url: str) -> None:
    from scripts.dev_tokens import access_token, session_cookie

    base = f"http://127.0.0.1:{port}"
    ada, bob = access_token("ada"), access_token("bob")
    print(
        f"""
  API           {base}   (GET / answers once ready)
  Database      {database_url.replace("authenticator", "postgres")}
                (the functions connect as {database_url})
  Users         ada (mongo id "ada") and bob (mongo id "bob"); space #lounge with the bot @echo
  Auth          refresh grant and JWKS on {os.environ["SUPABASE_URL"]} (tokens signed with the local secret)
  Bot model     {"OpenRouter via OPENROUTER_API_KEY" if os.environ.get("OPENROUTER_API_KEY") else "built-in echo model (offline; set OPENROUTER_API_KEY for a real one)"}

  ada's access token (1 hour; `uv run python scripts/dev_tokens.py` for fresh ones):
    {ada}
  bob's access token:
    {bob}
  ada's session cookie:
    {session_cookie("ada")}

  curl {base}/auth/token -H 'Cookie: {session_cookie("ada")[:40]}...'
  curl -X POST {base}/chat/threads/ensure -H 'Authorization: Bearer {ada[:16]}...' -H 'Content-Type: application/json' -d '{{"other_mongo_id": "bob"}}'
  curl -X POST {base}/chat/messages -H 'Authorization: Bearer {ada[:16]}...' -H 'Content-Type: application/json' -d '{{"thread_id": "ada__bob", "body": "Hi Bob"}}'
  curl -X POST {base}/webhooks/bot-trigger -H 'x-webhook-secret: {os.environ["WEBHOOK_SECRET"]}' -H 'Content-Type: application/json' -d @<(jq -r .body events/bot-trigger.json)
  (full tokens above; `make demo` plays a whole conversation)

  Ctrl-C stops everything.
""",
        flush=True,
    )


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    load_local_env()
    port = int(os.environ.get("PORT", "8000"))
    pg_port = int(os.environ.get("DEV_PG_PORT", "54322"))
    auth_port = int(os.environ.get("DEV_AUTH_PORT", "54321"))
    # The functions find GoTrue (and the JWKS) under SUPABASE_URL, as on Supabase.
    os.environ["SUPABASE_URL"] = f"http://127.0.0.1:{auth_port}"
    data = Path(os.environ.get("DEV_DATA_DIR", str(ROOT / ".local" / "dev")))
    allow_page_origin()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    cluster = PgCluster(data / "pg", pg_port)
    say(f"starting PostgreSQL on 127.0.0.1:{pg_port} (data in {data / 'pg'})")
    cluster.start()
    server: ThreadingHTTPServer | None = None
    auth_server: ThreadingHTTPServer | None = None
    front_end: FrontEnd | None = None
    try:
        applied = apply_schema(cluster.dsn())
        say(f"schema ready ({len(applied)} new migration(s) applied)")
        database_url = cluster.dsn(user="authenticator")
        os.environ["DATABASE_URL"] = database_url
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute((DEV / "seed.sql").read_text().encode())
            conn.execute(
                "insert into private.settings (key, value) values ('bot_trigger_url', %s),"
                " ('bot_trigger_secret', %s) on conflict (key) do update set value = excluded.value",
                (f"http://127.0.0.1:{port}/webhooks/bot-trigger", os.environ["WEBHOOK_SECRET"]),
            )
        say("demo seeded: ada, bob, #lounge, @echo")

        from shared import container

        handlers = {name: importlib.import_module(f"functions.{name}.handler").handler
                    for name in set(ROUTES.values()) | {"bot_worker"}}  # fmt: skip
        jobs = LocalQueue(handlers["bot_worker"], container.bot_worker_settings().bot_max_receives)
        container.use_queue(jobs)
        threading.Thread(target=jobs.run, args=(stop,), name="queue", daemon=True).start()
        WebhookDeliverer(cluster.dsn(), stop).start()

        auth = LocalAuth()
        front_end = start_front_end(cluster.dsn(), database_url, auth, port)
        auth_server = ThreadingHTTPServer(("127.0.0.1", auth_port), auth.handler())
        auth_server.daemon_threads = True
        threading.Thread(target=auth_server.serve_forever, name="auth", daemon=True).start()

        server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(handlers))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        (data / "state.json").write_text(json.dumps({"port": port, "database_url": cluster.dsn()}))
        say(f"serving on http://127.0.0.1:{port}")
        say(
            f"demo page on {front_end.url} (Realtime at {os.environ['SUPABASE_URL']}/realtime/v1/websocket)"
        )
        banner(port, database_url)
        stop.wait()
        say("stopping")
    finally:
        stop.set()
        if front_end is not None:
            front_end.stop()
        for running in (server, auth_server):
            if running is not None:
                running.shutdown()
                running.server_close()
        cluster.stop()
        say("stopped: PostgreSQL is down, nothing left running")
    return 0
