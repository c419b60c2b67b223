"""CORS for exact origins with credentials: Starlette's CORSMiddleware,
configured once per app from ALLOWED_ORIGINS (read at cold start).

An allowed origin gets itself back with credentials allowed and `Vary:
Origin`; a preflight from it gets 200 with the methods and headers; any other
origin gets no CORS headers, and 400 on preflight (a browser only looks at
the missing Access-Control-Allow-Origin, whatever the status).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.middleware.cors import CORSMiddleware

ALLOWED_HEADERS = ("authorization", "content-type", "x-client-info", "apikey", "x-request-id")
MAX_AGE = 600

__all__ = ["CORSMiddleware", "options"]


def options(origins: Iterable[str], methods: str) -> dict[str, Any]:
    """CORSMiddleware's arguments: exact origins only (never a wildcard or a
    pattern, which credentials forbid), the app's methods plus OPTIONS."""
    return {
        "allow_origins": list(origins),
        "allow_credentials": True,
        "allow_methods": [*(m.strip() for m in methods.split(",") if m.strip()), "OPTIONS"],
        "allow_headers": list(ALLOWED_HEADERS),
        "max_age": MAX_AGE,
    }
