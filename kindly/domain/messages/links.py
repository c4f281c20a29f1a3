"""The shape of a reminder's self-service link, ``<public base URL>/p/<token>``: one place for the store
that issues tokens, the activity that puts the link in a message, and the content check that counts
its length before anything is sent.

The token is 16 random bytes in URL-safe base64 without padding: 128 bits, 22 characters, all of
them in the GSM-7 alphabet, so a link never turns an English message into UCS-2. Its shape is fixed,
so a malformed token is told from a possible one without asking the database.
"""

from __future__ import annotations

import re

__all__ = ["LINK_PATH", "TOKEN_BYTES", "TOKEN_LENGTH", "is_token", "sample_link", "self_service_link"]

TOKEN_BYTES = 16
"""Random bytes in a token: 128 bits, beyond guessing however many links are live."""
TOKEN_LENGTH = 22
"""Characters of a token: ``TOKEN_BYTES`` in base64 without its padding."""
LINK_PATH = "/p/"
"""Where the customer's page lives under the public base URL."""

_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")


def is_token(value: str) -> bool:
    """Whether ``value`` has a token's length and alphabet (it may still be unknown)."""
    return _TOKEN.fullmatch(value) is not None


def self_service_link(public_base_url: str, token: str) -> str:
    """The link a message shows for ``token``."""
    return f"{public_base_url}{LINK_PATH}{token}"


def sample_link(public_base_url: str) -> str:
    """A link as long as every real one under ``public_base_url``: what the content check counts."""
    return self_service_link(public_base_url, "A" * TOKEN_LENGTH)
