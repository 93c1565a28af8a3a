"""An EC2 instance metadata service (IMDSv2 only) for the rehearsal's nodes, at 169.254.169.254:80.

What the edge nodes' launch template sets in AWS (``http_tokens = "required"``, a hop limit) and
what the worker's SDK (botocore's credential chain) asks for:

    PUT /latest/api/token                       X-aws-ec2-metadata-token-ttl-seconds: 1..21600
                                                -> a token; the response leaves with IP TTL = the
                                                hop limit, so it reaches a pod behind its node
                                                only with a hop limit of 2 (as on EC2)
    GET /latest/meta-data/iam/security-credentials/         -> the instance role's name
    GET /latest/meta-data/iam/security-credentials/<role>   -> temporary credentials (JSON)
    GET /latest/meta-data/placement/region | instance-id | local-ipv4 | ...

Every GET needs a valid ``X-aws-ec2-metadata-token`` (401 without, as with IMDSv2 required). The
credentials are random per start (the S3 stand-in, moto, accepts any); they expire after six hours
and are renewed before, as EC2 rotates them.

    python -m rehearsal.imds --listen 169.254.169.254:80 --hop-limit 2 --role ca4-edge-node
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import Sequence

MAX_TTL_S = 21600
CREDENTIALS_S = 6 * 3600


class Metadata:
    """Tokens and the role's credentials, shared by the request handlers."""

    def __init__(self, role: str, region: str, hop_limit: int) -> None:
        self.role, self.region, self.hop_limit = role, region, hop_limit
        self.tokens: dict[str, float] = {}
        self.lock = threading.Lock()
        self.credentials: dict[str, str] = {}
        self.expires = 0.0

    def new_token(self, ttl: int) -> str:
        """A token valid for ``ttl`` seconds."""
        token = secrets.token_urlsafe(32)
        with self.lock:
            now = time.time()
            self.tokens = {t: e for t, e in self.tokens.items() if e > now}
            self.tokens[token] = now + ttl
        return token

    def valid(self, token: str | None) -> bool:
        """The token was issued here and has not expired."""
        with self.lock:
            return token is not None and self.tokens.get(token, 0) > time.time()

    def role_credentials(self) -> dict[str, str]:
        """The instance role's temporary credentials, renewed an hour before they expire."""
        with self.lock:
            now = time.time()
            if now > self.expires - 3600:
                self.expires = now + CREDENTIALS_S
                self.credentials = {
                    "Code": "Success",
                    "LastUpdated": _iso(now),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": "ASIA" + secrets.token_hex(8).upper(),
                    "SecretAccessKey": secrets.token_urlsafe(30),
                    "Token": secrets.token_urlsafe(64),
                    "Expiration": _iso(self.expires),
                }
            return dict(self.credentials)


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MetadataHandler(http.server.BaseHTTPRequestHandler):
    """IMDSv2's routes on ``metadata`` (a class attribute: ``handler`` binds it)."""

    metadata: Metadata
    server_version = "EC2ws"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # every answer leaves with the hop limit as its IP TTL, as IMDS's do
        self.connection.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, self.metadata.hop_limit)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"imds {self.client_address[0]} {format % args}\n")

    def _send(self, status: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token":
            self._send(404, "Not Found")
            return
        raw = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_TTL_S:
            self._send(400, "Bad Request: X-aws-ec2-metadata-token-ttl-seconds must be 1-21600")
            return
        if self.headers.get("X-Forwarded-For"):
            self._send(403, "Forbidden")  # IMDS refuses tokens asked through a proxy
            return
        token = self.metadata.new_token(int(raw))
        self.send_response(200)
        self.send_header("X-aws-ec2-metadata-token-ttl-seconds", raw)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(token)))
        self.end_headers()
        self.wfile.write(token.encode())

    def do_GET(self) -> None:
        if not self.metadata.valid(self.headers.get("X-aws-ec2-metadata-token")):
            self._send(401, "Unauthorized")
            return
        found = self._answer(self.path.split("?", 1)[0])
        if found is None:
            self._send(404, "Not Found")
        else:
            self._send(200, *found)

    def _answer(self, path: str) -> tuple[str, str] | None:
        creds = "/latest/meta-data/iam/security-credentials/"
        local = self.connection.getsockname()[0]
        answers = {
            creds: self.metadata.role,
            creds + self.metadata.role: json.dumps(self.metadata.role_credentials()),
            "/latest/meta-data/placement/region": self.metadata.region,
            "/latest/meta-data/placement/availability-zone": self.metadata.region + "a",
            "/latest/meta-data/instance-id": "i-rehearsal" + self.client_address[0].replace(".", ""),
            "/latest/meta-data/local-ipv4": self.client_address[0],
            "/latest/meta-data/services/domain": "amazonaws.com",
            "/latest/meta-data/": "iam/\ninstance-id\nlocal-ipv4\nplacement/\n",
        }
        if path in answers:
            kind = "application/json" if path == creds + self.metadata.role else "text/plain"
            return answers[path], kind
        if path == "/latest/dynamic/instance-identity/document":
            document = {"region": self.metadata.region, "instanceId": "i-rehearsal", "privateIp": local}
            return json.dumps(document), "application/json"
        return None


def handler(metadata: Metadata) -> type[http.server.BaseHTTPRequestHandler]:
    """The request handler class bound to ``metadata``."""
    bound = metadata  # a class body that assigns ``metadata`` cannot read the argument of that name

    class Handler(MetadataHandler):
        metadata = bound

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until killed."""
    parser = argparse.ArgumentParser(prog="python -m rehearsal.imds", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="169.254.169.254:80", help="address:port (default %(default)s)")
    parser.add_argument(
        "--hop-limit", type=int, default=2, help="IP TTL of the answers (default %(default)s)"
    )
    parser.add_argument("--role", default="ca4-edge-node", help="instance role name (default %(default)s)")
    parser.add_argument("--region", default="us-east-1", help="the instance's region (default %(default)s)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    metadata = Metadata(args.role, args.region, args.hop_limit)
    server = http.server.ThreadingHTTPServer((host, int(port)), handler(metadata))
    print(f"imds: IMDSv2 on {args.listen}, hop limit {args.hop_limit}, role {args.role}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
