"""Bearer-token check for POST /metadata, in constant time."""

from __future__ import annotations

import hashlib
import hmac


class TokenVerifier:
    """Accepts a request whose bearer token hashes to one of the configured digests."""

    def __init__(self, digests: list[bytes]) -> None:
        if not digests:
            raise ValueError("at least one token digest is required")
        self._digests = list(digests)

    def verify(self, authorization: str | None) -> bool:
        """True when ``Authorization: Bearer <token>`` carries an accepted token."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        presented = hashlib.sha256(token.strip().encode()).digest()
        # compare against every digest, so timing tells nothing about which one matched
        ok = False
        for digest in self._digests:
            ok |= hmac.compare_digest(presented, digest)
        return ok
