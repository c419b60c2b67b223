"""The container's HTTP clients share one pool: a cold start's first request
reaches Supabase (JWKS, then PostgREST or GoTrue) over one connection."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from shared import container
from tests.support.loopback import serve

pytestmark = pytest.mark.unit


class _Edge(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def _fresh_container() -> Iterator[None]:
    container.reset()
    _Edge.connections = 0
    yield
    container.close_connections()
    container.reset()


def test_clients_built_for_different_services_reuse_one_connection() -> None:
    with serve(_Edge) as url:
        # Given two clients, as the JWKS cache and the PostgREST adapter build them
        jwks_http = container.http_client(3.0)
        rest_http = container.http_client(5.0)
        # When the first fetches the keys and the second then calls an RPC on the same origin
        assert jwks_http.get(f"{url}/auth/v1/.well-known/jwks.json").status_code == 200
        assert rest_http.get(f"{url}/rest/v1/rpc/ensure_thread").status_code == 200
        # Then the server saw one connection: one TCP (and, on Supabase, TLS) handshake
        assert _Edge.connections == 1


def test_closing_connections_empties_the_shared_pool_and_clients_reconnect() -> None:
    with serve(_Edge) as url:
        # Given a client whose connection is pooled
        http = container.http_client(3.0)
        http.get(url)
        # When the pools are emptied (SnapStart's before-snapshot hook)
        container.close_connections()
        # Then the next request opens a new connection, and succeeds
        assert http.get(url).status_code == 200
        assert _Edge.connections == 2
