"""A loopback stand-in for Supabase's edge and AWS's secrets endpoints that
answers instantly: the JWKS, canned RPC results, SSM parameters (through the
Parameters and Secrets extension's local API and through SSM's own API for
boto3), so benchmarks time our code, not a database or AWS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.loopback import serve


@contextmanager
def canned_supabase(
    jwks: dict[str, Any], answers: dict[str, Any], parameters: dict[str, str] | None = None
) -> Iterator[str]:
    ssm = parameters or {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: with Nagle on, the body waits for
        # the client's delayed ACK (40 ms), which a benchmark would count.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, body: Any, content_type: str = "application/json") -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/systemsmanager/parameters/get":  # the extension
                name = parse_qs(url.query)["name"][0]
                self._reply({"Parameter": {"Name": name, "Type": "SecureString",
                                           "Value": ssm[name]}})  # fmt: skip
                return
            self._reply(jwks)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("X-Amz-Target") == "AmazonSSM.GetParameters":  # boto3
                names = json.loads(body)["Names"]
                found = [{"Name": n, "Type": "SecureString", "Value": ssm[n], "Version": 1}
                         for n in names]  # fmt: skip
                self._reply({"Parameters": found, "InvalidParameters": []},
                            "application/x-amz-json-1.1")  # fmt: skip
                return
            self._reply(answers[self.path.rsplit("/", 1)[-1]])

    with serve(Handler) as url:
        yield url
