"""The TLS context every HTTP client of a container shares.

Loading a CA bundle file (certifi's, httpx's default) parses all ~150
certificates up front: about 50 ms of every cold start, for the one or two
CAs a function ever meets (Supabase's and the model provider's). A hashed CA
directory (OpenSSL's `capath`: one file per CA, named by subject hash) is
read lazily instead: OpenSSL opens only the files a handshake asks for.

The artifacts ship certifi's CAs as such a directory (`ca-certificates/` at
their root, written by scripts/package_functions.py), so the trust is
exactly certifi's. Without it (tests, local runs), or when the operator sets
SSL_CERT_FILE or SSL_CERT_DIR, httpx's own default applies.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

SHIPPED_CA_DIRECTORY = Path(__file__).resolve().parent.parent / "ca-certificates"


def client_context(ca_directory: Path = SHIPPED_CA_DIRECTORY) -> ssl.SSLContext:
    """A verifying client context (hostname checked, TLS 1.2+)."""
    if (
        os.environ.get("SSL_CERT_FILE")
        or os.environ.get("SSL_CERT_DIR")
        or not ca_directory.is_dir()
    ):
        import httpx

        return httpx.create_ssl_context()
    return ssl.create_default_context(capath=str(ca_directory))
