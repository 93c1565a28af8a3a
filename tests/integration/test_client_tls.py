"""The producer client against real HTTPS servers on loopback, with certificates from throwaway CAs.

A CA4 stack without ``api_certificate_arn`` signs the API's certificate with its own CA. The
client must refuse such a server without that CA (at once, naming ``CA4_CA_BUNDLE``, never
retrying), accept it with the CA given as a path or as PEM text, and, in that same
configuration, still trust servers whose certificates chain to the public roots: a second
CA stands in for a public root by being added to certifi's bundle for the test.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import os
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca4_events.schema import GpuMetadataEvent
from ca4_producer import Ca4Client, Ca4ClientError, tls
from tests.integration.support import h200_events
from tests.tools.run import run

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ca:
    """A throwaway CA: its key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        """The CA certificate as PEM text."""
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


# x509.KeyUsage's flags, every one required; a CA signs certificates and revocation lists
KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)
CA_KEY_USAGE = {"digital_signature", "key_cert_sign", "crl_sign"}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _signed(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """A certificate for ``key``, valid for a day (from five minutes ago), signed by ``signer``;
    ``extensions`` are (extension, critical)."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def make_ca(cn: str) -> Ca:
    """A self-signed CA valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(**{flag: flag in CA_KEY_USAGE for flag in KEY_USAGE_FLAGS})
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (usage, True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
    ]
    return Ca(key, _signed(_name(cn), _name(cn), key, key, extensions))


def server_files(ca: Ca, folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by ``ca``: (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False),
    ]
    cert = _signed(_name("127.0.0.1"), ca.cert.subject, key, ca.key, extensions)
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class Accepting(http.server.BaseHTTPRequestHandler):
    """Answers every POST /metadata with 202 and the event ids, like the API; counts requests."""

    requests = 0

    def do_POST(self) -> None:
        """202 with the ids of the posted event(s)."""
        type(self).requests += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        events = body.get("events", [body])
        payload = json.dumps({"event_ids": [e.get("event_id") for e in events]}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


StartServer = Callable[[Ca], str]


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start HTTPS servers on 127.0.0.1 with a certificate of the given CA: ``start(ca) -> URL``."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(ca: Ca) -> str:
        cert_file, key_file = server_files(ca, tmp_path / f"server-{len(servers)}")
        handler = type("Handler", (Accepting,), {"requests": 0})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"https://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def event() -> GpuMetadataEvent:
    """One real H200 event."""
    return h200_events("tls-test", "tls")[-1]


def no_sleep(seconds: float) -> None:
    """A retry would sleep: fail the test instead."""
    raise AssertionError(f"the client retried (it wanted to sleep {seconds:.2f} s)")


def test_the_stacks_own_certificate_is_refused_at_once_naming_ca4_ca_bundle(
    https_server: StartServer, event: GpuMetadataEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tls.CA_BUNDLE_ENV, raising=False)
    url = https_server(make_ca("ca4 stack CA"))
    with Ca4Client(url, "token", sleep=no_sleep, secrets=lambda _: None) as client:
        assert client.trust == "public roots", client.trust
        with pytest.raises(Ca4ClientError) as refused:
            client.post_event(event)
    message = str(refused.value)
    assert "CA4_CA_BUNDLE" in message and "not trusted" in message, message
    assert "edge_api_ca_certificate_pem" in message, "the message says where the CA comes from"


def test_with_the_ca_as_a_path_or_as_pem_text_it_is_accepted(
    https_server: StartServer, event: GpuMetadataEvent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tls.CA_BUNDLE_ENV, raising=False)
    ca = make_ca("ca4 stack CA")
    url = https_server(ca)
    ca_file = tmp_path / "ca4-api-ca.pem"
    ca_file.write_text(ca.pem)
    with Ca4Client(url, "token", ca_bundle=str(ca_file), sleep=no_sleep) as client:
        assert client.post_event(event).status == 202
        assert str(ca_file) in client.trust, client.trust
    monkeypatch.setenv(tls.CA_BUNDLE_ENV, ca.pem)  # a Colab secret holds the text itself
    with Ca4Client(url, "token", sleep=no_sleep) as client:
        assert client.post_event(event).status == 202
        assert client.ca_origin == "environment", client.ca_origin
        assert "PEM text (1 certificate(s))" in client.trust, client.trust


def test_the_public_roots_are_still_trusted_beside_the_ca(
    https_server: StartServer, event: GpuMetadataEvent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same configuration (CA4_CA_BUNDLE set) reaches a server of a public root too."""
    own, public = make_ca("ca4 stack CA"), make_ca("stand-in public root")
    roots = tmp_path / "roots.pem"
    roots.write_text(Path(certifi.where()).read_text() + "\n" + public.pem)
    monkeypatch.setattr(tls.certifi, "where", lambda: str(roots))
    monkeypatch.setenv(tls.CA_BUNDLE_ENV, own.pem)
    own_url, public_url = https_server(own), https_server(public)
    for url in (own_url, public_url):
        with Ca4Client(url, "token", sleep=no_sleep) as client:
            assert client.post_event(event).status == 202, url
    monkeypatch.delenv(tls.CA_BUNDLE_ENV)
    with Ca4Client(public_url, "token", sleep=no_sleep, secrets=lambda _: None) as client:
        assert client.post_event(event).status == 202, "the public root alone"


def test_a_ca_bundle_that_is_neither_file_nor_pem_is_named(tmp_path: Path) -> None:
    with pytest.raises(Ca4ClientError, match=r"CA4_CA_BUNDLE=.*neither a file nor PEM text"):
        Ca4Client("https://127.0.0.1:9", "token", ca_bundle=str(tmp_path / "missing.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(Ca4ClientError, match=r"CA4_CA_BUNDLE: .* holds no usable certificate"):
        Ca4Client("https://127.0.0.1:9", "token", ca_bundle=str(garbage))


def test_the_cli_stops_at_once_with_a_readable_message(https_server: StartServer, h200_dir: Path) -> None:
    """As a new user tries it: `python -m ca4_producer snapshot --post` against the stack's own
    certificate exits 2 in seconds with one line naming CA4_CA_BUNDLE, no traceback, no retries."""
    url = https_server(make_ca("ca4 stack CA"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CA4_")}
    env.update(EDGE_API_URL=url, CA4_API_TOKEN="token")
    started = time.monotonic()
    done = run(
        [sys.executable, "-m", "ca4_producer", "snapshot", "--replay", str(h200_dir), "--post"],
        timeout=60,
        env=env,
        cwd=REPO,
    )
    took = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and "CA4_CA_BUNDLE" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "attempt failed" not in done.stderr, done.stderr
    assert took < 15, f"took {took:.1f} s: it must not retry a certificate failure"
