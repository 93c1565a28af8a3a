"""Download DocumentDB's TLS CA bundle for the CA4 image (Dockerfile, build stage).

Usage: python fetch_ca_bundle.py URL DEST [SHA256] [PEM_BASE64]
HTTPS only; the answer must hold PEM certificates; with SHA256 its content is pinned too.
PEM_BASE64, when given, is the bundle itself (base64): nothing is downloaded (the rehearsal
cluster passes its database's CA this way, where AWS cannot be reached).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sys
import urllib.request


def main(argv: list[str]) -> int:
    """Fetch, check, write; print what was written."""
    url, dest = argv[1], argv[2]
    expected = argv[3] if len(argv) > 3 else ""
    given = argv[4] if len(argv) > 4 else ""
    if given:
        try:
            data = base64.b64decode(given, validate=True)
        except binascii.Error as exc:
            print(f"DOCUMENTDB_CA_BUNDLE_PEM_B64 is not base64: {exc}", file=sys.stderr)
            return 1
        url = "DOCUMENTDB_CA_BUNDLE_PEM_B64"
    elif not url.startswith("https://"):
        print(f"refusing a CA bundle over anything but HTTPS: {url}", file=sys.stderr)
        return 1
    else:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - https only, checked above
            data = resp.read()
    count = data.count(b"-----BEGIN CERTIFICATE-----")
    if count < 1:
        print(f"{url} did not return PEM certificates", file=sys.stderr)
        return 1
    digest = hashlib.sha256(data).hexdigest()
    if expected and digest != expected.lower():
        print(f"CA bundle sha256 {digest} differs from the pinned {expected}", file=sys.stderr)
        return 1
    with open(dest, "wb") as out:
        out.write(data)
    print(f"{dest}: {count} certificates, sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
