"""`make dev`: the whole product on this machine, with no Supabase project,
no AWS account and no internet.

A private PostgreSQL under .local/dev (kept between runs), the schema and a
demo seed, all five functions served over HTTP through the same Lambda
entry points, a webhook deliverer in place of pg_net's worker, the webhook
redelivery on a short schedule, and moto's SQS with Lambda's event source
mapping played in place of SQS (infra/dev/platform.py). Ctrl-C stops it all.
"""

from __future__ import annotations

import base64
import fcntl
import importlib
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import psycopg

from infra.dev.auth import LocalAuth
from infra.dev.platform import (
    EventSourceMapping,
    LocalSqs,
    QueueSettings,
    Redeliverer,
    WebhookDeliverer,
)
from infra.dev.ports import Port, PortProblem, check, parse
from infra.dev.stack import Stack
from infra.dev.web.hook import FrontEnd, allow_page_origin, start_front_end
from infra.local.cluster import BOOTSTRAP_SUPERUSER, PgCluster
from infra.local.partitions import maintain_realtime_partitions
from infra.local.schema import apply_schema, as_role

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
        # Headers and body leave in two writes: with Nagle on, a keep-alive
        # client's next response waited for its delayed ACK (40 ms under load).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002
            # DEBUG: each function writes its own access line (shared.logs)
            logging.getLogger("dev.http").debug("%s %s", self.command, self.path)

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
            started = time.perf_counter()
            response = handlers[function](event, None)
            # What Lambda would bill (the handler's own time), apart from this
            # server's: `make load` reads it to say where a request's time went.
            took = f"lambda;dur={(time.perf_counter() - started) * 1000:.2f}"
            payload = response.get("body") or ""
            data = (
                base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
            )
            headers = {**(response.get("headers") or {}), "Server-Timing": took}
            self._send(response["statusCode"], headers, list(response.get("cookies") or []), data)

        do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = _serve

    return Handler


DEMO_UTTERANCE = "/msg-dev-hello"


def keep_realtime_partitions(dsn: str, stop: threading.Event, every: float = 3600.0) -> None:
    """realtime.messages' daily partitions, kept ahead of the clock as the
    Realtime server's janitor does, for a `make dev` that runs for days. A
    database outage only delays the next round."""
    while not stop.wait(every):
        try:
            maintain_realtime_partitions(dsn)
        except psycopg.Error as exc:
            logging.getLogger("dev").warning("realtime partitions not maintained: %s", exc)


def queue_settings() -> QueueSettings:
    """The bot queue as serverless.yml makes it, with what make dev scales:
    the worker's retry delays (BOT_RETRY_DELAYS in local.env) and these."""
    return QueueSettings(
        visibility_timeout=int(os.environ.get("DEV_QUEUE_VISIBILITY_SECONDS", "90")),
        max_receives=int(os.environ.get("BOT_MAX_RECEIVES", "5")),
        concurrency=int(os.environ.get("DEV_WORKER_CONCURRENCY", "4")),
    )


def seed(cluster: PgCluster, port: int) -> None:
    """The demo seed, the webhook's target and one utterance for the printed
    bot-trigger command to name (inserted without firing the webhook: the
    command is what triggers the bot)."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute((DEV / "seed.sql").read_text().encode())
        conn.execute(
            "insert into private.settings (key, value) values ('bot_trigger_url', %s),"
            " ('bot_trigger_secret', %s) on conflict (key) do update set value = excluded.value",
            (f"http://127.0.0.1:{port}/webhooks/bot-trigger", os.environ["WEBHOOK_SECRET"]),
        )
        # Webhook redelivery scaled down from hosted's (30 s doubling to 300 s).
        conn.execute(
            "insert into private.settings (key, value) values ('bot_delivery_retry_seconds', %s),"
            " ('bot_delivery_max_retry_seconds', %s) on conflict (key) do update set value = excluded.value",
            (os.environ.get("DEV_DELIVERY_RETRY_SECONDS", "2"),
             os.environ.get("DEV_DELIVERY_MAX_RETRY_SECONDS", "10")),
        )  # fmt: skip
        with conn.transaction():
            # postgres owns the table, as on hosted (no superuser's replica mode).
            conn.execute("alter table public.intentions disable trigger intentions_bot_webhook")
            conn.execute(
                "insert into public.intentions (id, name, type, owner_id, location_id, state, content)"
                " values (%s, 'Message from Ada', 'utterance', '@ada', '#lounge', 'complete',"
                ' \'{"text": "Hello Echo, what can you do?"}\') on conflict (id) do nothing',
                (DEMO_UTTERANCE,),
            )
            conn.execute("alter table public.intentions enable trigger intentions_bot_webhook")


def webhook_body(intention_id: str) -> str:
    """What the database webhook sends for a new utterance (the handler reads
    the row back; the payload only names it)."""
    record = {"id": intention_id}
    return json.dumps(
        {"type": "INSERT", "table": "intentions", "schema": "public", "record": record,
         "old_record": None}
    )  # fmt: skip


def try_it(base: str, port: int) -> list[str]:
    """Commands that run as printed in a new bash in the repository, with
    nothing on PATH but the system's (uv lives in ~/.local/bin, which only
    the Makefile adds): tokens come from a make target, into shell variables
    (a JWT is too long to paste)."""
    curl = "curl -sS --fail-with-body -w '\\n'"
    json_type = "-H 'Content-Type: application/json'"
    secret = shlex.quote(f"x-webhook-secret: {os.environ['WEBHOOK_SECRET']}")
    return [
        f'eval "$(make -s tokens PORT={port})"'
        "   # ADA_TOKEN, BOB_TOKEN, ADA_COOKIE, BOB_COOKIE (1 hour)",
        f'{curl} {base}/auth/token -H "Cookie: $ADA_COOKIE"',
        f'{curl} -X POST {base}/chat/threads/ensure -H "Authorization: Bearer $ADA_TOKEN"'
        f' {json_type} -d \'{{"other_mongo_id": "bob"}}\'',
        f'{curl} -X POST {base}/chat/messages -H "Authorization: Bearer $ADA_TOKEN"'
        f' {json_type} -d \'{{"thread_id": "ada__bob", "body": "Hi Bob"}}\'',
        f"{curl} -X POST {base}/webhooks/bot-trigger -H {secret} {json_type}"
        f" -d {shlex.quote(webhook_body(DEMO_UTTERANCE))}",
    ]


def banner(stack: Stack) -> None:
    commands = "\n".join(f"    {line}" for line in try_it(stack.api_url, stack.port))
    print(
        f"""
  Demo page     {stack.page_url}   (open it: pick Ada or Bob, chat live, watch @echo answer in #lounge)
  API           {stack.api_url}   (GET / answers once ready)
  Database      {stack.database_url}
                (the functions connect as {stack.functions_database_url})
  Data          {stack.data_dir}   (PostgreSQL log: {stack.postgres_log})
  Users         ada (mongo id "ada") and bob (mongo id "bob"); space #lounge with the bot @echo
  Auth          refresh grant and JWKS on {stack.supabase_url} (tokens signed with the local secret)
  Realtime      {stack.supabase_url}/realtime/v1/websocket (private channels under our RLS)
  Bot model     {"OpenRouter via OPENROUTER_API_KEY" if os.environ.get("OPENROUTER_API_KEY") else "built-in echo model (offline; set OPENROUTER_API_KEY for a real one)"}
  Published in  {stack.path}   (`make demo` and `make invoke` read it)

  Try it (bash, in this folder; the last one makes @echo answer Ada's "{DEMO_UTTERANCE}" once):
{commands}

  In another terminal, in this folder:
    make demo PORT={stack.port}   # plays a whole conversation, narrated
    make invoke FN=threadEnsure PORT={stack.port}   # one function through sls invoke local; `make invoke` lists them all
  Ctrl-C stops everything.
""",
        flush=True,
    )


class DataDirInUse(RuntimeError):
    pass


def lock_data_dir(data: Path, port: int) -> IO[str]:
    """One `make dev` per data folder: the lock dies with its process, so a
    crashed run never blocks the next one."""
    data.mkdir(parents=True, exist_ok=True)
    lock = (data / "make-dev.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise DataDirInUse(
            f"{data} is in use by another `make dev` ({holder}): stop it with Ctrl-C in its"
            " terminal, or give this one its own DEV_DATA_DIR (and PORT, DEV_PG_PORT, DEV_AUTH_PORT)"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}, port {port}")
    lock.flush()
    return lock


class LocalServer(ThreadingHTTPServer):
    # socketserver's default backlog is 5: a browser's or a load run's burst
    # of new connections had its SYNs dropped and retried after 1, 3, 7 s.
    request_queue_size = 1024


def serve(
    address: tuple[str, int], handler: type[BaseHTTPRequestHandler], what: str, variable: str
) -> ThreadingHTTPServer:
    try:
        server = LocalServer(address, handler)
    except OSError as exc:
        raise RuntimeError(
            f"cannot serve {what} on {address[0]}:{address[1]} ({exc.strerror}): another program"
            f" uses the port; choose a free one with {variable}=..."
        ) from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=what, daemon=True).start()
    return server


def ports() -> list[Port]:
    """Every port make dev will listen on, from the environment (one line if one is bad)."""
    api = parse("PORT", os.environ.get("PORT", "8000"))
    return [
        Port("PORT", "the API", api),
        Port("DEV_WEB_PORT", "the demo page", parse("DEV_WEB_PORT", os.environ.get("DEV_WEB_PORT") or str(api + 1))),
        Port("DEV_AUTH_PORT", "auth and Realtime", parse("DEV_AUTH_PORT", os.environ.get("DEV_AUTH_PORT", "54321"))),
        Port("DEV_PG_PORT", "PostgreSQL", parse("DEV_PG_PORT", os.environ.get("DEV_PG_PORT", "54322"))),
    ]  # fmt: skip


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    load_local_env()
    # Every port is checked before anything starts (and before the data
    # folder is made), so a clash costs nothing and names the port.
    try:
        checked = ports()
        check(checked)
    except PortProblem as exc:
        print(f"make dev: {exc}", file=sys.stderr, flush=True)
        return 1
    port, _, auth_port, pg_port = (p.number for p in checked)
    # The functions find GoTrue (and the JWKS) under SUPABASE_URL, as on Supabase.
    os.environ["SUPABASE_URL"] = f"http://127.0.0.1:{auth_port}"
    # Pages served from the API's own origin may call it, whatever its port.
    origins = [o for o in os.environ["ALLOWED_ORIGINS"].split(",") if o]
    own = f"http://127.0.0.1:{port}"
    os.environ["ALLOWED_ORIGINS"] = ",".join([*origins, own] if own not in origins else origins)
    data = Path(os.environ.get("DEV_DATA_DIR", str(ROOT / ".local" / "dev"))).resolve()
    allow_page_origin()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    try:
        lock = lock_data_dir(data, port)
    except DataDirInUse as exc:
        print(f"make dev: {exc}", file=sys.stderr, flush=True)
        return 1
    cluster = PgCluster(data / "pg", pg_port)
    sqs: LocalSqs | None = None
    stack: Stack | None = None
    front_end: FrontEnd | None = None
    servers: list[ThreadingHTTPServer] = []
    try:
        leftover = cluster.stop_leftover()
        if leftover:
            say(f"stopped PostgreSQL (pid {leftover}) that a previous run of {data} left running")
        say(f"starting PostgreSQL on 127.0.0.1:{pg_port} (data in {data / 'pg'})")
        cluster.start()
        applied = apply_schema(cluster.dsn())
        say(f"schema ready ({len(applied)} new migration(s) applied)")
        database_url = cluster.dsn(user="authenticator")
        os.environ["DATABASE_URL"] = database_url
        seed(cluster, port)
        say("demo seeded: ada, bob, #lounge, @echo")

        # SQS (moto, in this process) before the functions load: they read
        # BOT_QUEUE_URL at cold start, and send, delay and delete through boto3.
        os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
        sqs = LocalSqs(queue_settings(), os.environ["AWS_DEFAULT_REGION"]).start()
        os.environ["BOT_QUEUE_URL"] = sqs.url
        handlers = {name: importlib.import_module(f"functions.{name}.handler").handler
                    for name in set(ROUTES.values()) | {"bot_worker"}}  # fmt: skip
        EventSourceMapping(sqs, handlers["bot_worker"], stop).start()
        WebhookDeliverer(cluster.dsn(), stop).start()
        Redeliverer(
            cluster.dsn(), stop, float(os.environ.get("DEV_REDELIVERY_SECONDS", "2"))
        ).start()
        threading.Thread(
            target=keep_realtime_partitions, args=(cluster.dsn(), stop), name="partitions",
            daemon=True,
        ).start()  # fmt: skip

        auth = LocalAuth()
        # Realtime is a platform component: it connects as the superuser, as
        # Supabase's own Realtime connects with its admin role.
        front_end = start_front_end(
            as_role(cluster.dsn(), BOOTSTRAP_SUPERUSER), database_url, auth, port
        )
        servers.append(serve(("127.0.0.1", auth_port), auth.handler(), "auth", "DEV_AUTH_PORT"))
        servers.append(serve(("127.0.0.1", port), make_handler(handlers), "http", "PORT"))
        stack = Stack(
            pid=os.getpid(), port=port, api_url=f"http://127.0.0.1:{port}",
            supabase_url=os.environ["SUPABASE_URL"], database_url=cluster.dsn(),
            functions_database_url=database_url, data_dir=str(data),
            postgres_log=str(cluster.log_file), page_url=front_end.url,
        )  # fmt: skip
        stack.publish()
        say(f"serving on {stack.api_url}")
        say(
            f"demo page on {front_end.url} (Realtime at {stack.supabase_url}/realtime/v1/websocket)"
        )
        banner(stack)
        stop.wait()
        say("stopping")
    except RuntimeError as exc:
        print(f"make dev: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stop.set()
        if stack is not None:
            stack.withdraw()
        if front_end is not None:
            front_end.stop()
        for running in servers:
            running.shutdown()
            running.server_close()
        cluster.stop()
        if sqs is not None:
            sqs.stop()
        lock.close()
        say("stopped: PostgreSQL is down, nothing left running")
    return 0
