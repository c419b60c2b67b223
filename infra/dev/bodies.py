"""Request bodies for make dev's HTTP servers (http.server reads none
itself): the length a request declares is checked before a byte is read, as
the gateway in front of the hosted service checks it. A request whose length
is not a length, or is over the server's limit, is refused with a status
(each server answers it in its own JSON shape) and its connection closed:
the unread body would otherwise be read as the next request."""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler
from typing import Any

# RFC 9110 8.6: 1*DIGIT, ASCII. str.isdigit() also takes '²' (a byte of
# latin-1, in which headers are read), which int() refuses; and int() refuses
# a string of over 4,300 digits.
_LENGTH = re.compile(r"[0-9]+")
_MAX_DIGITS = 18  # more is past any limit, and never reaches int()
_CODES = {400: "bad_request", 411: "length_required", 413: "payload_too_large"}


class BodyRefused(Exception):
    """A body not read: `status` 400 (Content-Length is not one length),
    411 (no length: a chunked body), or 413 (over the limit)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def error(self) -> dict[str, Any]:
        """The refusal in our functions' error shape."""
        return {"error": {"code": _CODES[self.status], "message": self.message}}


def declared_length(handler: BaseHTTPRequestHandler, limit: int) -> int:
    """The request's Content-Length (0 if none), or BodyRefused."""
    if handler.headers.get("Transfer-Encoding") is not None:
        raise BodyRefused(411, "send the body with a Content-Length (chunked bodies are not read)")
    # Repeated headers, or a list in one, must all say the same (RFC 9112 6.3).
    values = {
        v.strip() for h in handler.headers.get_all("Content-Length") or [] for v in h.split(",")
    }
    if not values:
        return 0
    if len(values) != 1 or not _LENGTH.fullmatch(value := values.pop()):
        raise BodyRefused(400, "Content-Length must be one whole number of bytes")
    if len(value) > _MAX_DIGITS or int(value) > limit:
        raise BodyRefused(413, f"send a body of at most {limit} bytes")
    return int(value)


def read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    """The request's body as its Content-Length declares it, or BodyRefused
    (the connection is then closed after the answer)."""
    try:
        length = declared_length(handler, limit)
    except BodyRefused:
        handler.close_connection = True
        raise
    return handler.rfile.read(length) if length else b""
