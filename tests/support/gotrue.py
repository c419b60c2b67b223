"""GoTrue's refresh grant as documented: refresh tokens rotate on use, and
the parent token may be reused within a short interval (so two tabs that
refresh at once both succeed); anything else is `invalid_grant`."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.support.tokens import SigningKeys


@dataclass
class RefreshGrant:
    keys: SigningKeys
    user_id: str
    mongo_id: str | None = "amy"
    reuse_interval: float = 10.0
    ttl: int = 3600
    active: dict[str, float | None] = field(default_factory=dict)  # token -> when it was used
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self) -> str:
        token = uuid.uuid4().hex[:12]
        self.active[token] = None
        return token

    def session(self, refresh_token: str) -> dict[str, Any]:
        claims = self.keys.user_claims(self.user_id, mongo_id=self.mongo_id, ttl=self.ttl)
        return {
            "access_token": self.keys.sign(claims),
            "token_type": "bearer",
            "expires_in": self.ttl,
            "expires_at": claims["exp"],
            "refresh_token": refresh_token,
            "user": {
                "id": self.user_id,
                "aud": "authenticated",
                "role": "authenticated",
                "email": claims["email"],
                "app_metadata": claims["app_metadata"],
                "user_metadata": {},
            },
        }

    def __call__(self, body: dict[str, Any]) -> tuple[int, Any]:
        token = body.get("refresh_token")
        with self._lock:
            if token not in self.active:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid Refresh Token: Refresh Token Not Found",
                }
            used = self.active[token]
            if used is not None and time.time() - used > self.reuse_interval:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid Refresh Token: Already Used",
                }
            self.active[token] = used or time.time()
            return 200, self.session(self.issue())
