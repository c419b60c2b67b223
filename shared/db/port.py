"""The one way the functions reach data: call a Postgres function (RPC)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from shared.auth.principal import Caller


class Database(Protocol):
    def call(self, function: str, args: Mapping[str, Any], caller: Caller) -> Any:
        """Runs public.<function>(**args) as `caller`; returns its JSON result.

        Raises typed errors (shared.errors): the function's own 'PTxxx' errors
        as that status, an unreachable database as ServiceUnavailable.
        """
        ...

    def close(self) -> None: ...
