"""Server-sent events, parsed as the spec says (`data:` lines joined until a
blank line; comment lines (`:`) and other fields ignored; lines end with
CRLF, LF or CR), from raw bytes as they arrive, with caps: a line or an
event longer than its cap is an error, so a stream that never ends a line
or an event cannot grow the process's memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

MAX_LINE_BYTES = 256 * 1024
MAX_EVENT_BYTES = 1024 * 1024


class StreamTooLarge(ValueError):
    """A line or an event went past its cap."""


class EventParser:
    """Feed it bytes as they come; it yields the data of each complete event."""

    def __init__(self, max_line: int = MAX_LINE_BYTES, max_event: int = MAX_EVENT_BYTES) -> None:
        self._max_line = max_line
        self._max_event = max_event
        self._line = bytearray()
        self._data: list[bytes] = []
        self._event_size = 0
        self._after_cr = False

    def feed(self, chunk: bytes) -> Iterator[str]:
        start = 0
        if self._after_cr and chunk[:1] == b"\n":
            start = 1  # the LF of a CRLF split across chunks
        self._after_cr = False
        size = len(chunk)
        while start < size:
            cr = chunk.find(b"\r", start)
            lf = chunk.find(b"\n", start)
            ends = [i for i in (cr, lf) if i >= 0]
            if not ends:
                self._grow(chunk[start:])
                return
            end = min(ends)
            self._grow(chunk[start:end])
            line = bytes(self._line)
            self._line.clear()
            if chunk[end : end + 1] == b"\r":
                if end + 1 == size:
                    self._after_cr = True
                elif chunk[end + 1 : end + 2] == b"\n":
                    end += 1
            start = end + 1
            event = self._take(line)
            if event is not None:
                yield event

    def close(self) -> Iterator[str]:
        """The last event, if the stream ended without its blank line."""
        if self._line:
            event = self._take(bytes(self._line))
            self._line.clear()
            if event is not None:
                yield event
        if self._data:
            yield self._flush()

    def _grow(self, part: bytes) -> None:
        if len(self._line) + len(part) > self._max_line:
            raise StreamTooLarge(f"a stream line longer than {self._max_line} bytes")
        self._line += part

    def _take(self, line: bytes) -> str | None:
        if not line:
            return self._flush() if self._data else None
        if line.startswith(b":"):
            return None  # a comment or keep-alive
        field, _, value = line.partition(b":")
        if field == b"data":
            value = value[1:] if value.startswith(b" ") else value
            self._event_size += len(value) + 1
            if self._event_size > self._max_event:
                raise StreamTooLarge(f"a stream event larger than {self._max_event} bytes")
            self._data.append(value)
        return None

    def _flush(self) -> str:
        data = b"\n".join(self._data).decode("utf-8", errors="replace")
        self._data = []
        self._event_size = 0
        return data


def events(chunks: Iterable[bytes]) -> Iterator[str]:
    """The data of each event in a stream of byte chunks, in order."""
    parser = EventParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()
