"""What `make dev` adds for the browser: the Realtime endpoint (reached
through SUPABASE_URL) and the demo page on its own origin."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import partial
from http.server import ThreadingHTTPServer

from infra.dev.auth import LocalAuth
from infra.dev.realtime.server import ApiKeys, RealtimeServer
from infra.dev.web.history import recent
from infra.dev.web.lounge import say
from infra.dev.web.server import page_handler
from scripts.dev_tokens import USERS
from shared import container


def page_port() -> int:
    """DEV_WEB_PORT, else the port after the functions' (PORT + 1)."""
    return int(os.environ.get("DEV_WEB_PORT") or int(os.environ.get("PORT", "8000")) + 1)


def allow_page_origin() -> str:
    """The page's origin joins ALLOWED_ORIGINS (before the functions load
    their settings), so CORS with credentials is exercised for real."""
    origin = f"http://127.0.0.1:{page_port()}"
    allowed = [o for o in os.environ.get("ALLOWED_ORIGINS", "").split(",") if o]
    if origin not in allowed:
        os.environ["ALLOWED_ORIGINS"] = ",".join([*allowed, origin])
    return origin


@dataclass
class FrontEnd:
    realtime: RealtimeServer
    page: ThreadingHTTPServer
    url: str

    def stop(self) -> None:
        self.page.shutdown()
        self.page.server_close()
        self.realtime.stop()


def start_front_end(admin_dsn: str, database_url: str, auth: LocalAuth, api_port: int) -> FrontEnd:
    keys = ApiKeys(os.environ["SUPABASE_ANON_KEY"], os.environ.get("SUPABASE_SERVICE_ROLE_KEY", ""))
    realtime = RealtimeServer(admin_dsn, keys, container.verifier)
    realtime.start()
    auth.realtime = realtime
    settings = container.settings()
    config = {
        "supabaseUrl": settings.supabase_url,
        "anonKey": settings.supabase_anon_key.get_secret_value(),
        "apiUrl": f"http://127.0.0.1:{api_port}",
        "refreshMarginSeconds": int(os.environ.get("TOKEN_REFRESH_MARGIN_SECONDS", "60")),
    }
    cookie = os.environ.get("AUTH_COOKIE_NAME") or f"sb-{settings.project_ref}-auth-token"
    handler = page_handler(config, auth.sign_in, partial(say, database_url), cookie, list(USERS),
                           partial(recent, database_url))  # fmt: skip
    try:
        page = ThreadingHTTPServer(("127.0.0.1", page_port()), handler)
    except OSError as exc:
        realtime.stop()
        raise RuntimeError(f"the demo page cannot listen on port {page_port()} ({exc.strerror}):"
                         " set DEV_WEB_PORT to a free port") from None  # fmt: skip
    page.daemon_threads = True
    threading.Thread(target=page.serve_forever, name="page", daemon=True).start()
    return FrontEnd(realtime, page, f"http://127.0.0.1:{page_port()}")
