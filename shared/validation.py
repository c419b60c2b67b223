"""Field types for untrusted input, shared by every request model.

PostgreSQL `text` cannot hold NUL, and nothing in PostgreSQL can hold a lone
surrogate (it is not UTF-8). Both are valid in a JSON string, so they are
refused here, as a 4xx naming the field, before any adapter sees them:
psycopg refuses them client-side (a 500 until now) while PostgREST answers 4xx.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


Storable = AfterValidator(_storable)
"""The check alone, to follow other constraints:
`Annotated[str, StringConstraints(...), Storable]` (constraints first, so that
pydantic applies them to the string itself)."""

PgText = Annotated[str, Storable]
"""A string PostgreSQL `text` can store. Use it for every string a caller sends."""
