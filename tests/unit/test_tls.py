"""The shared TLS context reads the artifact's hashed CA directory lazily and
still verifies: a server whose CA is in the directory is trusted, any other
is refused, and the hostname is checked."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scripts.package_functions import write_ca_directory
from shared.tls import client_context

pytestmark = pytest.mark.unit


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey,
    *, ca: bool, san: x509.GeneralName | None = None,
) -> x509.Certificate:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                          key_agreement=False, encipher_only=False, decipher_only=False),
            critical=True,
        )  # fmt: skip
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def project_ca(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed; returns the
    bundle (holding the CA and an unrelated one), the server's cert and key."""
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("Test Project CA", ca_key, "Test Project CA", ca_key, ca=True)
    other = _certificate("Some Other CA", other_key, "Some Other CA", other_key, ca=True)
    server = _certificate(
        "127.0.0.1", server_key, "Test Project CA", ca_key, ca=False,
        san=x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    )  # fmt: skip
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(_pem(other) + _pem(ca))
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    cert_file.write_bytes(_pem(server))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return bundle, cert_file, key_file


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def _https(cert_file: Path, key_file: Path) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_operator_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def test_the_hashed_directory_is_read_lazily_and_trusts_its_cas(
    tmp_path: Path, project_ca: tuple[Path, Path, Path]
) -> None:
    # Given a bundle written as the artifacts' hashed CA directory
    bundle, cert_file, key_file = project_ca
    directory = tmp_path / "ca-certificates"
    assert write_ca_directory(bundle, directory) == 2
    assert all(name.split(".")[1] == "0" for name in (p.name for p in directory.iterdir()))

    # When a context is built from it
    context = client_context(directory)

    # Then nothing was parsed up front (the cold-start saving)
    assert context.cert_store_stats()["x509_ca"] == 0
    # And a server whose CA is in it is trusted, with its hostname checked
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    with _https(cert_file, key_file) as port, httpx.Client(verify=context) as client:
        assert client.get(f"https://127.0.0.1:{port}/").text == "ok"
        with pytest.raises(httpx.ConnectError):
            client.get(f"https://localhost:{port}/")  # not the name on the certificate


def test_a_server_whose_ca_is_not_in_the_directory_is_refused(
    tmp_path: Path, project_ca: tuple[Path, Path, Path]
) -> None:
    # Given a directory without the server's CA (certifi's own, as shipped)
    _, cert_file, key_file = project_ca
    directory = tmp_path / "ca-certificates"
    import certifi

    assert write_ca_directory(Path(certifi.where()), directory) > 50

    # When the client connects, Then verification fails
    with (
        _https(cert_file, key_file) as port,
        httpx.Client(verify=client_context(directory)) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"https://127.0.0.1:{port}/")


def test_without_a_shipped_directory_the_default_bundle_is_used(tmp_path: Path) -> None:
    # Given no directory (tests, local runs): httpx's default, certifi's bundle
    context = client_context(tmp_path / "absent")
    assert context.cert_store_stats()["x509_ca"] > 50


def test_the_shipped_directory_holds_exactly_certifi_s_certificates(tmp_path: Path) -> None:
    # Given certifi's bundle written as the artifacts' hashed directory
    import certifi

    directory = tmp_path / "ca-certificates"
    write_ca_directory(Path(certifi.where()), directory)

    # When each file of it is loaded, and the bundle itself
    from_directory = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for path in directory.iterdir():
        from_directory.load_verify_locations(cafile=str(path))
    from_bundle = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    from_bundle.load_verify_locations(cafile=certifi.where())

    # Then they trust the same authorities, no more, no fewer
    def certificates(context: ssl.SSLContext) -> set[bytes]:
        return set(context.get_ca_certs(binary_form=True))

    assert certificates(from_directory) == certificates(from_bundle)
    assert len(certificates(from_bundle)) > 50
