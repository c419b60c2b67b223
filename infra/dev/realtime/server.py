"""The local Realtime endpoint: `ws://.../realtime/v1/websocket`.

One asyncio loop in a background thread serves the WebSocket connections
(the `websockets` library) and LISTENs for the ids that the stand-in
triggers (infra/local/050_realtime_delivery.sql) notify. Each joined
channel has its own queue and task, so a subscriber sees its rows in commit
order. As on hosted Realtime, a private channel is authorized at join and on
each new token, per extension (broadcast, presence) and by the policies on
realtime.messages alone, then receives every broadcast on its topic if it
may read broadcasts; postgres_changes are checked per row and per subscriber
under RLS. Presence is Phoenix's: `track`/`untrack`, `presence_state` after
the join, `presence_diff` on every change, a leave when a channel goes.

Every long-lived task (the LISTEN loop, each channel's deliveries, each
connection's frames, expiry timers) outlives what it cannot handle: it logs
one line and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
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
EXTENSIONS = ("broadcast", "presence")
logger = logging.getLogger("dev.realtime")


def one_line(exc: BaseException) -> str:
    """An exception as one log line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


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
    presence_key: str = ""
    # Realtime Authorization's outcome per extension (private channels); an
    # extension missing here has not been checked yet.
    may_read: dict[str, bool] = field(default_factory=dict)
    may_write: dict[str, bool] = field(default_factory=dict)
    presence: dict[str, Any] | None = None  # this channel's tracked meta (with phx_ref)
    tracked: Any = None  # the payload it was tracked with (a repeat is a no-op)
    expiry: asyncio.TimerHandle | None = None
    inbox: asyncio.Queue[tuple[str, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.topic.removeprefix("realtime:")

    def reads(self, extension: str) -> bool:
        """Public channels read everything; private ones what their policies allow."""
        return not self.private or self.may_read.get(extension) is True

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
        try:
            data = encode(frame, self.vsn)
        except (RecursionError, TypeError, ValueError) as exc:
            logger.warning("not sent: %s on %s cannot be encoded (%s)", frame.event,
                           frame.topic, one_line(exc))  # fmt: skip
            return
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(data)

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
        self._tasks: set[asyncio.Task[None]] = set()

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

    def _spawn(self, work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        """A background task whose failure is one log line, never a silent death."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            error = None if finished.cancelled() else finished.exception()
            if error is not None:
                logger.warning("%s failed: %s", what, one_line(error))

        task.add_done_callback(done)
        return task

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
                except psycopg.Error as exc:
                    logger.warning("database error on %s %s: %s", frame.event, frame.topic,
                                   one_line(exc))  # fmt: skip
                    await connection.reply(frame, "error", {"reason": _DATABASE_DOWN})
                except Exception as exc:  # one frame must not end the connection
                    logger.warning("could not handle %s on %s: %s", frame.event, frame.topic,
                                   one_line(exc))  # fmt: skip
                    await connection.reply(frame, "error", {"reason": "Unknown Error on Channel"})
        except ConnectionClosed:
            pass
        finally:
            for channel in list(connection.channels.values()):
                await self._leave(channel)

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
            await self._leave(channel)
            await connection.reply(frame, "ok", {})
        elif frame.event == "access_token":
            await self._new_token(channel, frame.payload.get("access_token"))
        elif frame.event == "broadcast":
            await self._client_broadcast(channel, frame)
        elif frame.event == "presence":
            await self._presence(channel, frame)
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
            await self._leave(old)
            await old.push("phx_close", {})
        connection.channels[frame.topic] = channel
        self._subscribers.setdefault(channel.name, set()).add(channel)
        channel.worker = self._spawn(self._deliver(channel), f"deliveries to {channel.name}")
        await connection.reply(
            frame, "ok", {"postgres_changes": [b.reply() for b in channel.bindings]}
        )
        if "presence" in channel.extensions and channel.reads("presence"):
            await channel.push("presence_state", self._presence_state(channel))
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
        caller, expires_at = await self._caller(token)
        try:
            bindings = [Binding.parse(p) for p in config.get("postgres_changes") or []]
        except InvalidBinding as exc:
            raise JoinRefused(f"RealtimeDisabledForConfiguration: {exc}") from None
        # As hosted: presence is checked (and its state sent) when the client
        # enables it, which realtime-js does for a channel with presence listeners.
        extensions = ["broadcast", "presence"] if _flag(presence.get("enabled")) else ["broadcast"]
        key = presence.get("key")
        channel = Channel(
            connection, frame.topic, frame.join_ref, _flag(config.get("private")), caller, token,
            _flag(broadcast.get("self")), _flag(broadcast.get("ack")), bindings, extensions,
            presence_key=str(key) if key not in (None, "") else str(uuid.uuid1()),
        )  # fmt: skip
        if channel.private:
            channel.may_read = await self.db.can_read(caller, name, extensions)
            if not any(channel.may_read.values()):
                raise JoinRefused(
                    "Unauthorized: You do not have permissions to read from this Channel topic:"
                    f" {name}"
                )
        self._schedule_expiry(channel, expires_at)
        return channel

    async def _caller(self, token: str) -> tuple[Caller, float | None]:
        """The claims a token stands for, and when it expires (API keys: never)."""
        role = self.api_keys.role(token)
        if role is not None:
            return Caller({"role": role}), None
        if token.startswith("sb_"):
            # A publishable or secret key (never a JWT) the project does not have.
            raise JoinRefused("InvalidJWTToken: Invalid API key")
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
        channel.expiry = loop.call_later(delay, self._expire, channel)

    def _expire(self, channel: Channel) -> None:
        message = "Token has expired 0 seconds ago"
        self._spawn(self._shutdown(channel, message), f"closing {channel.name} at expiry")

    async def _shutdown(self, channel: Channel, message: str) -> None:
        """What Realtime does when a channel may no longer run: a system
        error, then the channel closes."""
        if channel.connection.channels.get(channel.topic) is not channel:
            return
        await self._leave(channel)
        await channel.system("system", "error", message)
        await channel.push("phx_close", {})

    async def _leave(self, channel: Channel) -> None:
        """The channel goes (leave, close, disconnect, rejoin): unsubscribed,
        and its presence leaves, as Phoenix's tracker does for a dead channel."""
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
        await self._untrack(channel)

    async def _new_token(self, channel: Channel, token: Any) -> None:
        """setAuth: the new token is checked as at join (the same extensions);
        a read it had and loses closes the channel. Until then, access
        granted at join holds."""
        if not isinstance(token, str) or not token or token == channel.token:
            return
        try:
            caller, expires_at = await self._caller(token)
        except JoinRefused as refused:
            await self._shutdown(channel, str(refused).partition(": ")[2] or str(refused))
            return
        if channel.private:
            may_read = await self.db.can_read(caller, channel.name, channel.extensions)
            if any(channel.may_read.get(e) and not allowed for e, allowed in may_read.items()):
                await self._shutdown(
                    channel,
                    f"You no longer have permission to read from this Channel topic: {channel.name}",
                )
                return
            channel.may_read = may_read
        channel.caller, channel.token, channel.may_write = caller, token, {}
        self._schedule_expiry(channel, expires_at)

    async def _may_write(self, channel: Channel, extension: str) -> bool:
        """Realtime's write check, run once per channel and token (as hosted
        Realtime checks it once per join, not per event)."""
        if not channel.private:
            return True
        if extension not in channel.may_write:
            channel.may_write.update(
                await self.db.can_write(channel.caller, channel.name, list(EXTENSIONS))
            )
        return channel.may_write[extension]

    async def _client_broadcast(self, channel: Channel, frame: Frame) -> None:
        """`channel.send({type: 'broadcast'})`: to the topic's other
        subscribers; on a private channel only if the write check passes."""
        allowed = await self._may_write(channel, "broadcast")
        if allowed:
            payload = {"type": "broadcast", "event": frame.payload.get("event"),
                       "payload": frame.payload.get("payload")}  # fmt: skip
            await self._fan_out(channel.name, channel.private, payload, channel)
        if channel.ack_broadcast and frame.ref is not None:
            await channel.connection.reply(frame, "ok" if allowed else "error", {})

    async def _fan_out(
        self, topic: str, private: bool, payload: dict[str, Any], sender: Channel | None = None
    ) -> None:
        """A broadcast to the channels on `topic` of the same kind that may read broadcasts."""
        for other in list(self._subscribers.get(topic, ())):
            if other.private != private or not other.reads("broadcast"):
                continue
            if other is not sender or sender.self_broadcast:
                await other.push("broadcast", payload)

    # -- presence ----------------------------------------------------------

    async def _presence(self, channel: Channel, frame: Frame) -> None:
        """`channel.track(payload)` / `channel.untrack()`, as Realtime's
        PresenceHandler: a private channel may track only if the write check
        for `presence` passes (run at the first track); untrack always works."""
        event = str(frame.payload.get("event", "")).lower()
        if event == "untrack":
            await self._untrack(channel)
            await channel.connection.reply(frame, "ok", {})
            return
        if event != "track":
            logger.info("unknown presence event %r on %s", event, channel.name)
            await channel.connection.reply(frame, "error", {})
            return
        payload = frame.payload.get("payload", {})
        if not isinstance(payload, dict):
            await channel.connection.reply(
                frame, "error", {"reason": "Presence track payload must be a map"}
            )
            return
        if channel.private and "presence" not in channel.may_read:
            # Presence was not enabled at join: its read is checked now, so
            # this channel's diffs are gated as they would have been.
            channel.may_read.update(await self.db.can_read(channel.caller, channel.name,
                                                           ["presence"]))  # fmt: skip
        if not await self._may_write(channel, "presence"):
            await channel.connection.reply(frame, "error", {})
            return
        await channel.connection.reply(frame, "ok", {})
        if payload == channel.tracked:
            return
        before = channel.presence
        meta = {**payload, "phx_ref": _presence_ref()}
        if before is not None:
            meta["phx_ref_prev"] = before["phx_ref"]
        channel.presence, channel.tracked = meta, payload
        leaves = {channel.presence_key: {"metas": [before]}} if before is not None else {}
        await self._presence_diff(
            channel, {"joins": {channel.presence_key: {"metas": [meta]}}, "leaves": leaves}
        )

    async def _untrack(self, channel: Channel) -> None:
        before, channel.presence, channel.tracked = channel.presence, None, None
        if before is not None:
            await self._presence_diff(
                channel, {"joins": {}, "leaves": {channel.presence_key: {"metas": [before]}}}
            )

    def _presence_state(self, channel: Channel) -> dict[str, Any]:
        """Everyone tracked on the channel's topic (private and public
        channels of one name are two topics), grouped by key, as
        Phoenix.Presence.list groups them."""
        state: dict[str, Any] = {}
        for other in list(self._subscribers.get(channel.name, ())):
            if other.private == channel.private and other.presence is not None:
                state.setdefault(other.presence_key, {"metas": []})["metas"].append(other.presence)
        return state

    async def _presence_diff(self, source: Channel, diff: dict[str, Any]) -> None:
        """To every channel on the topic that may read presence (the source
        included: a client sees its own join, as with Phoenix's tracker)."""
        for other in list(self._subscribers.get(source.name, ())):
            if other.private == source.private and other.reads("presence"):
                await other.push("presence_diff", diff)

    # -- the REST broadcast endpoint ----------------------------------------

    def api_broadcast(
        self, api_key: str, token: str, messages: list[dict[str, Any]], *, single: bool
    ) -> tuple[int, dict[str, Any] | None]:
        """POST /realtime/v1/api/broadcast (and .../<topic>/events/<event>),
        from another thread: the status and JSON body Realtime answers."""
        if self._loop is None:
            return 503, {"message": "Realtime is starting"}
        work = self._api_broadcast(api_key, token, messages, single=single)
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=30)

    async def _api_broadcast(
        self, api_key: str, token: str, messages: list[dict[str, Any]], *, single: bool
    ) -> tuple[int, dict[str, Any] | None]:
        """As Realtime's BatchBroadcast and SingleBroadcast: public messages
        go to public channels; private ones to private channels that may
        read broadcasts, if the caller passes the write check for the topic
        (the same insert policies as a client's send). A refused batch
        message is dropped silently; a refused single one is a 403."""
        api_role = self.api_keys.role(api_key)
        if api_role is None:
            return 401, {"message": "Invalid API key"}
        try:
            caller, _ = await self._caller(token or api_key)
        except JoinRefused:
            return 401, {"message": "Unauthorized"}
        allowed: dict[str, bool] = {}
        for message in messages:
            topic, private = message["topic"], message["private"]
            if private and topic not in allowed:
                writes = await self.db.can_write(caller, topic, ["broadcast"])
                allowed[topic] = writes["broadcast"]
            if private and not allowed[topic]:
                if single:
                    return 403, {"message": "Unauthorized"}
                continue
            payload = {"type": "broadcast", "event": message["event"],
                       "payload": message["payload"]}  # fmt: skip
            await self._fan_out(topic, private, payload)
        return 202, None

    # -- deliveries from the database -------------------------------------

    async def _listener(self) -> psycopg.AsyncConnection[Any]:
        listener = await psycopg.AsyncConnection.connect(self.db.dsn, autocommit=True)
        await listener.execute("listen local_realtime_broadcast")
        await listener.execute("listen local_realtime_changes")
        return listener

    async def _listen(self, listener: psycopg.AsyncConnection[Any]) -> None:
        """Routes notifications to the channels they concern; reconnects if
        the database goes away (rows committed meanwhile are not replayed).
        A notification it cannot route is logged and skipped."""
        while True:
            try:
                async for notification in listener.notifies():
                    try:
                        await self._route(notification.channel, notification.payload)
                    except Exception as exc:
                        logger.warning("skipped %s notification %.100s: %s",
                                       notification.channel, notification.payload, one_line(exc))  # fmt: skip
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
        event = json.loads(payload)
        if channel_name == "local_realtime_broadcast":
            for channel in list(self._subscribers.get(str(event.get("topic")), ())):
                channel.inbox.put_nowait(("broadcast", event))
            return
        # Taken (deleted) here, once, whoever subscribes: each change then
        # fans out from memory, in notification (commit) order.
        taken = await self.db.take_change(int(event["id"]))
        if taken is None:
            return
        for subscribers in list(self._subscribers.values()):
            for channel in list(subscribers):
                if any(b.covers(taken) for b in channel.bindings):
                    channel.inbox.put_nowait(("change", taken))

    async def _deliver(self, channel: Channel) -> None:
        while True:
            kind, event = await channel.inbox.get()
            try:
                if kind == "broadcast":
                    await self._deliver_broadcast(channel, event)
                else:
                    await self._deliver_change(channel, event)
            except Exception as exc:  # one bad row must not end the channel's deliveries
                logger.warning("not delivered to %s: %s %s (%s)", channel.name, kind,
                               str(event.get("id"))[:40], one_line(exc))  # fmt: skip

    async def _deliver_broadcast(self, channel: Channel, event: dict[str, Any]) -> None:
        # As hosted Realtime: no RLS per message. A private channel passed the
        # read check at join (and at its latest token); it receives every
        # private row on its topic. Public channels receive private = false rows.
        if not channel.reads("broadcast"):
            return
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


def _presence_ref() -> str:
    """A presence meta's unique ref (Phoenix's are opaque strings too)."""
    return secrets.token_urlsafe(9)


def _flag(value: Any) -> bool:
    """Realtime's FlexibleBoolean: true, "true" (any case) or 1."""
    return value is True or value == 1 or (isinstance(value, str) and value.lower() == "true")


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _http_error(connection: ServerConnection, status: HTTPStatus, message: str) -> Response:
    return connection.respond(status, json.dumps({"error": message}) + "\n")
