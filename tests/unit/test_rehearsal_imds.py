"""The rehearsal's IMDSv2 emulator on loopback, read by botocore's own instance metadata fetcher
(what the worker's credential chain uses on EC2): tokens required, the role's credentials, the
hop limit as the answers' IP TTL."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from botocore.utils import InstanceMetadataFetcher

from rehearsal import imds


@pytest.fixture
def endpoint() -> Iterator[str]:
    """The emulator on 127.0.0.1, a free port, hop limit 2."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), imds.handler(imds.Metadata("ca4-node", "us-east-1", 2))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_botocore_gets_the_roles_credentials_with_a_token(endpoint: str) -> None:
    """botocore's fetcher (IMDSv2: PUT a token, then GET with it) finds the role and its keys."""
    found = InstanceMetadataFetcher(
        timeout=2, num_attempts=1, base_url=endpoint
    ).retrieve_iam_role_credentials()
    assert found["role_name"] == "ca4-node"
    assert found["access_key"].startswith("ASIA")
    assert found["secret_key"] and found["token"]
    again = InstanceMetadataFetcher(
        timeout=2, num_attempts=1, base_url=endpoint
    ).retrieve_iam_role_credentials()
    assert again["access_key"] == found["access_key"]  # the same until renewal


def test_a_get_without_a_token_is_refused(endpoint: str) -> None:
    """IMDSv2 required: 401 without a token, 401 with a made-up one."""
    for headers in ({}, {"X-aws-ec2-metadata-token": "made-up"}):
        request = urllib.request.Request(f"{endpoint}/latest/meta-data/instance-id", headers=headers)  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=2)  # noqa: S310 - loopback
        assert caught.value.code == 401
        caught.value.close()


@pytest.mark.parametrize("ttl", ["0", "21601", "x", ""])
def test_a_token_ttl_out_of_range_is_refused(endpoint: str, ttl: str) -> None:
    """1-21600 seconds, as EC2's."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{endpoint}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=2)  # noqa: S310 - loopback
    assert caught.value.code == 400
    caught.value.close()


def test_answers_leave_with_the_hop_limit_as_ttl(endpoint: str) -> None:
    """The accepted connection's IP TTL is the hop limit (what keeps a limit of 1 from pods)."""
    seen: list[int] = []
    original = imds.handler(imds.Metadata("r", "us-east-1", 1))

    class Probe(original):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            super().setup()
            seen.append(self.connection.getsockopt(socket.IPPROTO_IP, socket.IP_TTL))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Probe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.server_address[1]}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with urllib.request.urlopen(request, timeout=2) as resp:  # noqa: S310 - loopback
            assert resp.status == 200
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [1]
