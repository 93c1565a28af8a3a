"""Which servers the producer trusts: the public roots, plus the CA4 stack's own CA when given.

Without ``api_certificate_arn`` the AWS stack signs the API's certificate with a CA of its
own (Terraform output ``edge_api_ca_certificate_pem``). No client trusts that CA by itself:
httpx verifies against certifi's public roots only, and ``SSL_CERT_FILE`` would *replace*
those roots rather than add to them. ``CA4_CA_BUNDLE`` names that CA, as a file path or as
the PEM text itself (so it fits a Colab secret), and it is trusted in addition to the
public roots: the same configuration still reaches a server with a public certificate.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi

CA_BUNDLE_ENV = "CA4_CA_BUNDLE"
PEM_MARKER = "-----BEGIN CERTIFICATE-----"

# where ``make ca4-platform-setup`` writes the stack's CA (beside the kubeconfig and tokens)
DEFAULT_CA_FILE = "kubeconfigs/ca4-api-ca.pem"


class CaBundleError(ValueError):
    """``CA4_CA_BUNDLE`` is neither a readable PEM file nor PEM text."""


def describe(ca_bundle: str) -> str:
    """A short description for people: the path, or "PEM text (N certificates)"; never the text."""
    text = ca_bundle.strip()
    if PEM_MARKER in text:
        return f"PEM text ({text.count(PEM_MARKER)} certificate(s))"
    return text


def ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A verifying client context: certifi's public roots, plus ``ca_bundle`` (a path or PEM text)."""
    context = ssl.create_default_context(cafile=certifi.where())
    if not ca_bundle or not ca_bundle.strip():
        return context
    text = ca_bundle.strip()
    try:
        if PEM_MARKER in text:
            context.load_verify_locations(cadata=text)
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise CaBundleError(
                    f"{CA_BUNDLE_ENV}={text!r} is neither a file nor PEM text "
                    f"(expected a path, or the certificate starting with {PEM_MARKER})"
                )
            context.load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        where = "the PEM text" if PEM_MARKER in text else text
        raise CaBundleError(f"{CA_BUNDLE_ENV}: {where} holds no usable certificate ({exc})") from None
    return context


def verify_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error inside a transport error's chain, if that is what it is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
