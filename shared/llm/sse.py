"""Server-sent events, parsed as the spec says: `data:` lines joined until a
blank line, comment lines (`:`) and other fields ignored."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def events(lines: Iterable[str]) -> Iterator[str]:
    """The data of each event, in order."""
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue  # a comment or keep-alive
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)
