"""Proxies from the environment, as the README promises: the functions'
clients route each URL exactly as a stock `httpx.Client` (which reads
HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY itself) would, against a
real forward proxy and a real origin on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from shared import container
from shared.errors import ConfigurationError
from tests.support.loopback import serve

# (autouse: no proxy variable of this machine's, a fresh container per test)
from tests.unit.test_http_transport import _container_without_proxies  # noqa: F401

pytestmark = pytest.mark.unit


class _Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._reply(b"direct")

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


class _Proxy(_Origin):
    """A forward proxy that answers for the target itself (plain HTTP) and
    refuses tunnels (HTTPS), naming what it was asked."""

    def do_GET(self) -> None:
        self._reply(f"via proxy: {self.path}".encode())

    def do_CONNECT(self) -> None:
        self.send_response(403)
        self.send_header("content-length", "0")
        self.end_headers()


@pytest.fixture
def servers() -> Iterator[tuple[str, int]]:
    with serve(_Proxy) as proxy, serve(_Origin) as origin:
        yield proxy, int(origin.rsplit(":", 1)[1])


def _outcome(client: httpx.Client, url: str) -> str:
    try:
        return client.get(url).text
    except httpx.HTTPError as exc:
        return type(exc).__name__


def _environments(proxy: str) -> list[dict[str, str]]:
    return [
        {},
        {"HTTP_PROXY": proxy},
        {"HTTP_PROXY": proxy, "NO_PROXY": "localhost"},
        {"HTTP_PROXY": proxy, "NO_PROXY": "127.0.0.2, localhost"},
        {"HTTP_PROXY": proxy, "NO_PROXY": "*"},
        {"ALL_PROXY": proxy, "NO_PROXY": "127.0.0.1"},
        {"HTTPS_PROXY": proxy},
        {"HTTPS_PROXY": proxy, "NO_PROXY": "localhost"},
        {"http_proxy": proxy, "no_proxy": "http://localhost"},
    ]


def test_each_url_goes_where_a_stock_httpx_client_sends_it(
    servers: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, port = servers
    urls = [
        f"http://localhost:{port}/rest/v1/rpc/f",
        f"http://127.0.0.1:{port}/auth/v1/.well-known/jwks.json",
        f"http://127.0.0.2:{port}/auth/v1/token",
        f"https://localhost:{port}/",  # through a proxy: a tunnel, which it refuses
    ]
    outcomes = set()
    for environment in _environments(proxy):
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        container.reset()  # settings, proxies included, are read at cold start
        with container.http_client(5.0) as ours, httpx.Client(timeout=5.0) as stock:
            for url in urls:
                expected = _outcome(stock, url)
                assert _outcome(ours, url) == expected, (environment, url)
                outcomes.add(expected)
        for name in environment:
            monkeypatch.delenv(name)
    # Each route was taken at least once: the comparison means something
    assert "direct" in outcomes
    assert f"via proxy: http://127.0.0.1:{port}/auth/v1/.well-known/jwks.json" in outcomes
    assert "ProxyError" in outcomes


def test_every_client_of_the_container_uses_the_proxy(
    servers: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a proxy in the environment at cold start
    proxy, port = servers
    monkeypatch.setenv("HTTP_PROXY", proxy)
    container.reset()
    # When two clients the container builds (JWKS's and PostgREST's timeouts) call out
    answers = [container.http_client(t).get(f"http://127.0.0.1:{port}/x").text for t in (3, 5)]
    # Then both went through it
    assert answers == [f"via proxy: http://127.0.0.1:{port}/x"] * 2


def test_a_proxy_httpx_cannot_use_stops_the_cold_start_without_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:s3cret@proxy.internal:1080")
    container.reset()
    with pytest.raises(ConfigurationError) as refused:
        container.http_client(5.0)
    assert "HTTPS_PROXY" in str(refused.value)
    assert "s3cret" not in str(refused.value)
