"""Hands a WebSocket upgrade that reached the local auth server (the host
SUPABASE_URL names) to the Realtime endpoint, then splices the two sockets,
so `createClient(SUPABASE_URL, anonKey)` finds Realtime where Supabase
serves it: SUPABASE_URL/realtime/v1/websocket."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler

PREFIX = "/realtime/v1/"


def forward_upgrade(handler: BaseHTTPRequestHandler, port: int) -> None:
    """Relays the request and everything after it; returns when either side closes."""
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        handler.send_error(502, "the Realtime endpoint is not running")
        return
    upstream.settimeout(None)
    head = f"{handler.command} {handler.path} HTTP/1.1\r\n{handler.headers}".rstrip("\r\n")
    upstream.sendall(
        head.replace("\r\n", "\n").replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n"
    )
    handler.wfile.flush()
    client = handler.connection
    pump = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    pump.start()
    _pump(client, upstream)
    pump.join(5)
    handler.close_connection = True


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
