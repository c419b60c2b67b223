"""The local Realtime endpoint: `ws://.../realtime/v1/websocket`.

One asyncio loop in a background thread serves the WebSocket connections
(the `websockets` library) and LISTENs for the ids that the stand-in
triggers (infra/local/050_realtime_delivery.sql) notify. Each joined
channel has its own queue and task, so a subscriber sees its rows in commit
order. As on hosted Realtime, a private channel is authorized at join and on
each new token, then receives every broadcast on its topic; postgres_changes
are checked per row and per subscriber under RLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from infra.dev.realtime.changes import Binding, InvalidBinding, change_payload
from infra.dev.realtime.database import Caller, RealtimeDatabase
from infra.dev.realtime.protocol import VERSIONS, Frame, ProtocolError, decode, encode
from shared.auth.verifier import TokenVerifier
from shared.errors import Unauthorized

PATH = "/realtime/v1/websocket"
_DATABASE_DOWN = "Realtime was unable to connect to the project database"
logger = logging.getLogger("dev.realtime")


class JoinRefused(Exception):
    """Why a join (or a new token) is refused, worded as Realtime words it."""


@dataclass(frozen=True)
class ApiKeys:
    """The project's API keys and the role each one stands for."""

    anon: str
    service_role: str

    def role(self, key: str) -> str | None:
        for role, known in (("anon", self.anon), ("service_role", self.service_role)):
            if known and hmac.compare_digest(key.encode(), known.encode()):
                return role
        return None


@dataclass(eq=False)
class Channel:
    connection: Connection
    topic: str  # as the client names it: "realtime:chat:ada__bob"
    join_ref: str | None
    private: bool
    caller: Caller
    token: str
    self_broadcast: bool
    ack_broadcast: bool
    bindings: list[Binding]
    extensions: list[str]  # what the read check covers: at join and on each new token
    may_write: bool | None = None
    expiry: asyncio.TimerHandle | None = None
    inbox: asyncio.Queue[tuple[str, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.topic.removeprefix("realtime:")

    async def push(self, event: str, payload: dict[str, Any]) -> None:
        await self.connection.send(Frame(self.join_ref, None, self.topic, event, payload))

    async def system(self, extension: str, status: str, message: str) -> None:
        await self.push(
            "system",
            {"extension": extension, "status": status, "message": message, "channel": self.name},
        )


class Connection:
    def __init__(self, ws: ServerConnection, vsn: str, api_role: str, api_key: str) -> None:
        self.ws = ws
        self.vsn = vsn
        self.api_role = api_role
        self.api_key = api_key
        self.channels: dict[str, Channel] = {}

    async def send(self, frame: Frame) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(encode(frame, self.vsn))

    async def reply(self, frame: Frame, status: str, response: dict[str, Any]) -> None:
        await self.send(
            Frame(frame.join_ref, frame.ref, frame.topic, "phx_reply",
                  {"status": status, "response": response})
        )  # fmt: skip


class RealtimeServer:
    def __init__(
        self,
        dsn: str,
        api_keys: ApiKeys,
        verifier: Callable[[], TokenVerifier],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.db = RealtimeDatabase(dsn)
        self.api_keys = api_keys
        self._verifier = verifier
        self.host, self.port = host, port
        self._subscribers: dict[str, set[Channel]] = {}  # by channel name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> int:
        """Serves in a background thread; returns the port once listening."""
        self._thread = threading.Thread(target=self._run, name="realtime", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError("the Realtime endpoint did not start") from self._error
        return self.port

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        await self.db.open()
        listener = await self._listener()
        server: Server
        async with serve(self._serve, self.host, self.port,
                         process_request=self._check_request) as server:  # fmt: skip
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            notifications = asyncio.create_task(self._listen(listener))
            await self._stopped.wait()
            notifications.cancel()
        await self.db.close()

    # -- handshake ---------------------------------------------------------

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path.rstrip("/") != PATH:
            return _http_error(connection, HTTPStatus.NOT_FOUND, "not found")
        query = parse_qs(url.query)
        key = (query.get("apikey") or [request.headers.get("apikey", "")])[0]
        if not key:
            return _http_error(connection, HTTPStatus.UNAUTHORIZED, "API key is missing")
        if self.api_keys.role(key) is None:
            return _http_error(
                connection, HTTPStatus.UNAUTHORIZED, "Failed to validate JWT signature"
            )
        vsn = (query.get("vsn") or ["1.0.0"])[0]
        if vsn not in VERSIONS:
            return _http_error(connection, HTTPStatus.BAD_REQUEST, f"unsupported vsn {vsn}")
        return None

    async def _serve(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        key = (query.get("apikey") or [ws.request.headers.get("apikey", "")])[0]
        connection = Connection(ws, (query.get("vsn") or ["1.0.0"])[0],
                                self.api_keys.role(key) or "anon", key)  # fmt: skip
        try:
            async for raw in ws:
                try:
                    frame = decode(raw, connection.vsn)
                except ProtocolError as exc:
                    logger.info("unreadable frame: %s", exc)
                    continue
                try:
                    await self._handle(connection, frame)
                except psycopg.Error:
                    logger.exception("database error on %s %s", frame.event, frame.topic)
                    await connection.reply(frame, "error", {"reason": _DATABASE_DOWN})
        except ConnectionClosed:
            pass
        finally:
            for channel in list(connection.channels.values()):
                self._leave(channel)

    # -- client frames -----------------------------------------------------

    async def _handle(self, connection: Connection, frame: Frame) -> None:
        if frame.topic == "phoenix" and frame.event == "heartbeat":
            await connection.reply(frame, "ok", {})
            return
        if frame.event == "phx_join":
            await self._join(connection, frame)
            return
        channel = connection.channels.get(frame.topic)
        if channel is None or (frame.join_ref and frame.join_ref != channel.join_ref):
            await connection.reply(frame, "error", {"reason": "unmatched topic"})
            return
        if frame.event == "phx_leave":
            self._leave(channel)
            await connection.reply(frame, "ok", {})
        elif frame.event == "access_token":
            await self._new_token(channel, frame.payload.get("access_token"))
        elif frame.event == "broadcast":
            await self._client_broadcast(channel, frame)
        else:
            logger.info("ignored %s on %s", frame.event, frame.topic)

    async def _join(self, connection: Connection, frame: Frame) -> None:
        try:
            channel = await self._authorize_join(connection, frame)
        except JoinRefused as refused:
            await connection.reply(frame, "error", {"reason": str(refused)})
            return
        old = connection.channels.get(frame.topic)
        if old is not None:  # a rejoin replaces the previous join, as Phoenix does
            self._leave(old)
            await old.push("phx_close", {})
        connection.channels[frame.topic] = channel
        self._subscribers.setdefault(channel.name, set()).add(channel)
        channel.worker = asyncio.create_task(self._deliver(channel))
        await connection.reply(
            frame, "ok", {"postgres_changes": [b.reply() for b in channel.bindings]}
        )
        for binding in channel.bindings:
            if await self.db.published(binding.schema, binding.table):
                await channel.system("postgres_changes", "ok", "Subscribed to PostgreSQL")
            else:
                await channel.system(
                    "postgres_changes", "error",
                    "Unable to subscribe to changes with given parameters. Please check Realtime is"
                    f" enabled for the given connect parameters: [{binding.params}]",
                )  # fmt: skip

    async def _authorize_join(self, connection: Connection, frame: Frame) -> Channel:
        name = frame.topic.removeprefix("realtime:")
        if not frame.topic.startswith("realtime:") or not name:
            raise JoinRefused("TopicNameRequired: You must provide a topic name")
        config = _object(frame.payload.get("config"))
        broadcast, presence = _object(config.get("broadcast")), _object(config.get("presence"))
        token = frame.payload.get("access_token") or frame.payload.get("user_token")
        token = token if isinstance(token, str) and token else connection.api_key
        caller, expires_at = await self._caller(connection, token)
        try:
            bindings = [Binding.parse(p) for p in config.get("postgres_changes") or []]
        except InvalidBinding as exc:
            raise JoinRefused(f"RealtimeDisabledForConfiguration: {exc}") from None
        extensions = ["broadcast", "presence"] if presence.get("enabled") else ["broadcast"]
        channel = Channel(
            connection, frame.topic, frame.join_ref, bool(config.get("private")), caller, token,
            bool(broadcast.get("self")), bool(broadcast.get("ack")), bindings, extensions,
        )  # fmt: skip
        if channel.private and not await self.db.can_read(caller, name, channel.extensions):
            raise JoinRefused(
                f"Unauthorized: You do not have permissions to read from this Channel topic: {name}"
            )
        self._schedule_expiry(channel, expires_at)
        return channel

    async def _caller(self, connection: Connection, token: str) -> tuple[Caller, float | None]:
        """The claims a token stands for, and when it expires (API keys: never)."""
        role = self.api_keys.role(token)
        if role is not None:
            return Caller({"role": role}), None
        if token.startswith("sb_"):  # publishable/secret keys: the connection's key
            return Caller({"role": connection.api_role}), None
        try:
            claims = await asyncio.to_thread(self._verifier().claims, token, verify_exp=False)
        except Unauthorized as exc:
            raise JoinRefused(f"InvalidJWTToken: {exc.message}") from None
        exp = claims.get("exp")
        if not isinstance(exp, int) or "role" not in claims:
            raise JoinRefused("InvalidJWTToken: Fields `role` and `exp` are required in JWT")
        if exp <= time.time():
            raise JoinRefused(
                f"InvalidJWTToken: Token has expired {int(time.time()) - exp} seconds ago"
            )
        return Caller(claims), float(exp)

    def _schedule_expiry(self, channel: Channel, expires_at: float | None) -> None:
        if channel.expiry is not None:
            channel.expiry.cancel()
            channel.expiry = None
        if expires_at is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, expires_at - time.time())
        channel.expiry = loop.call_later(
            delay, lambda: loop.create_task(self._shutdown(channel, "Token has expired 0 seconds ago"))
        )  # fmt: skip

    async def _shutdown(self, channel: Channel, message: str) -> None:
        """What Realtime does when a channel may no longer run: a system
        error, then the channel closes."""
        if channel.connection.channels.get(channel.topic) is not channel:
            return
        self._leave(channel)
        await channel.system("system", "error", message)
        await channel.push("phx_close", {})

    def _leave(self, channel: Channel) -> None:
        if channel.connection.channels.get(channel.topic) is channel:
            del channel.connection.channels[channel.topic]
        subscribers = self._subscribers.get(channel.name)
        if subscribers is not None:
            subscribers.discard(channel)
            if not subscribers:
                del self._subscribers[channel.name]
        if channel.expiry is not None:
            channel.expiry.cancel()
        if channel.worker is not None:
            channel.worker.cancel()

    async def _new_token(self, channel: Channel, token: Any) -> None:
        """setAuth: the new token is checked as at join (the same extensions);
        refused, the channel closes. Until then, access granted at join holds."""
        if not isinstance(token, str) or not token or token == channel.token:
            return
        try:
            caller, expires_at = await self._caller(channel.connection, token)
        except JoinRefused as refused:
            await self._shutdown(channel, str(refused).partition(": ")[2] or str(refused))
            return
        if channel.private and not await self.db.can_read(caller, channel.name, channel.extensions):
            await self._shutdown(
                channel,
                f"You no longer have permission to read from this Channel topic: {channel.name}",
            )
            return
        channel.caller, channel.token, channel.may_write = caller, token, None
        self._schedule_expiry(channel, expires_at)

    async def _client_broadcast(self, channel: Channel, frame: Frame) -> None:
        """`channel.send({type: 'broadcast'})`: to the topic's other
        subscribers; on a private channel only if the write check passes."""
        if channel.private and channel.may_write is None:
            channel.may_write = await self.db.can_write(channel.caller, channel.name)
        allowed = not channel.private or bool(channel.may_write)
        if allowed:
            payload = {"type": "broadcast", "event": frame.payload.get("event"),
                       "payload": frame.payload.get("payload")}  # fmt: skip
            for other in list(self._subscribers.get(channel.name, ())):
                if other.private == channel.private and (
                    other is not channel or channel.self_broadcast
                ):
                    await other.push("broadcast", payload)
        if channel.ack_broadcast and frame.ref is not None:
            await channel.connection.reply(frame, "ok" if allowed else "error", {})

    # -- deliveries from the database -------------------------------------

    async def _listener(self) -> psycopg.AsyncConnection[Any]:
        listener = await psycopg.AsyncConnection.connect(self.db.dsn, autocommit=True)
        await listener.execute("listen local_realtime_broadcast")
        await listener.execute("listen local_realtime_changes")
        return listener

    async def _listen(self, listener: psycopg.AsyncConnection[Any]) -> None:
        """Routes notifications to the channels they concern; reconnects if
        the database goes away (rows committed meanwhile are not replayed)."""
        while True:
            try:
                async for notification in listener.notifies():
                    await self._route(notification.channel, notification.payload)
            except psycopg.OperationalError:
                logger.warning("lost the LISTEN connection; reconnecting")
            finally:
                await listener.close()
            while True:
                await asyncio.sleep(1)
                try:
                    listener = await self._listener()
                    break
                except psycopg.OperationalError:
                    continue

    async def _route(self, channel_name: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if channel_name == "local_realtime_broadcast":
            for channel in list(self._subscribers.get(str(event.get("topic")), ())):
                channel.inbox.put_nowait(("broadcast", event))
            return
        try:
            # Taken (deleted) here, once, whoever subscribes: each change
            # then fans out from memory, in notification (commit) order.
            taken = await self.db.take_change(int(event["id"]))
        except (psycopg.Error, KeyError, TypeError, ValueError):
            logger.exception("could not take staged change %s", payload)
            return
        if taken is None:
            return
        event = taken
        for subscribers in list(self._subscribers.values()):
            for channel in list(subscribers):
                if any(b.covers(event) for b in channel.bindings):
                    channel.inbox.put_nowait(("change", event))

    async def _deliver(self, channel: Channel) -> None:
        while True:
            kind, event = await channel.inbox.get()
            try:
                if kind == "broadcast":
                    await self._deliver_broadcast(channel, event)
                else:
                    await self._deliver_change(channel, event)
            except Exception:  # one bad row must not end the channel's deliveries
                logger.exception("delivery to %s failed", channel.name)

    async def _deliver_broadcast(self, channel: Channel, event: dict[str, Any]) -> None:
        # As hosted Realtime: no RLS per message. A private channel passed the
        # read check at join (and at its latest token); it receives every
        # private row on its topic. Public channels receive private = false rows.
        row = await self.db.broadcast_row(str(event["id"]), channel.name)
        if row is None or row["private"] != channel.private:
            return
        await channel.push(
            "broadcast",
            {"type": "broadcast", "event": row["event"], "payload": row["payload"],
             "meta": {"id": row["id"]}},
        )  # fmt: skip

    async def _deliver_change(self, channel: Channel, change: dict[str, Any]) -> None:
        # The record is the version this change wrote (as the WAL has it);
        # RLS decides per subscriber whether the row is theirs to see.
        record: dict[str, Any] | None = change.get("record")
        if change["type"] != "DELETE" and not await self.db.row_visible(
            channel.caller, change["schema"], change["table"], change["keys"]
        ):
            return  # hidden from this subscriber by RLS (or gone)
        ids = [b.id for b in channel.bindings if b.matches(change, record or change["keys"])]
        if not ids:
            return
        columns = await self.db.columns(change["schema"], change["table"])
        await channel.push(
            "postgres_changes", {"ids": ids, "data": change_payload(change, columns, record)}
        )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _http_error(connection: ServerConnection, status: HTTPStatus, message: str) -> Response:
    return connection.respond(status, json.dumps({"error": message}) + "\n")
