"""Sentry API credentials: an auth token, the organization and the Sentry host.

No Prefect integration covers Sentry, so this block holds what the REST API
(``/api/0/...``) needs: a bearer token (an organization token or a user auth token
with ``org:read``, ``project:read`` and ``event:read``), the organization slug, and the
host (``https://sentry.io``, a regional host such as ``https://de.sentry.io``, or a
self-hosted Sentry).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

if TYPE_CHECKING:
    import httpx

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")


def http_base_url(value: str, field: str) -> str:
    """``value`` without a trailing slash, if it is an http(s) URL with a host."""
    value = value.strip().rstrip("/")
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or "@" in rest.split("/")[0]:
        raise ValueError(f"{field}: must be an http(s):// URL without credentials, got {value!r}")
    return value


class SentryCredentials(Block):
    """Credentials for the Sentry REST API.

    Args:
        token: a Sentry auth token (organization token or user token) with read scopes.
        organization: the organization slug, as in ``https://sentry.io/organizations/<slug>/``.
        base_url: the Sentry host; ``https://sentry.io`` for SaaS (``https://us.sentry.io``
            / ``https://de.sentry.io`` for a region), your own URL for self-hosted.
        timeout_seconds: per-request timeout.

    Example:
        ```python
        from blocks.sentry import SentryCredentials

        creds = SentryCredentials.load("BLOCK_NAME")
        with creds.get_client() as client:
            client.get(f"/api/0/organizations/{creds.organization}/projects/")
        ```
    """

    _block_type_name = "Sentry Credentials"
    _logo_url = "https://sentry-brand.storage.googleapis.com/sentry-glyph-black.png"
    _documentation_url = "https://docs.sentry.io/api/auth/"
    # a validation error must not echo the input: it may hold the token
    model_config = ConfigDict(hide_input_in_errors=True)

    token: SecretStr = Field(description="Sentry auth token (Bearer).")
    organization: str = Field(description="Organization slug.")
    base_url: str = Field(default="https://sentry.io", title="Base URL")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("organization")
    @classmethod
    def _slug(cls, value: str) -> str:
        value = value.strip()
        if not _SLUG.match(value):
            raise ValueError(
                f"organization: must be a Sentry slug (lowercase letters, digits, '-', '_'), "
                f"got {value!r}"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_base_url(value, "base_url")

    def get_client(self, **client_kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` on ``base_url`` that sends the token as a bearer header.

        Args:
            client_kwargs: ``httpx.Client`` options overriding the defaults
                (``timeout``, ``transport``, ...).
        """
        import httpx

        options: dict[str, Any] = {
            "base_url": self.base_url,
            "timeout": httpx.Timeout(self.timeout_seconds, connect=10.0),
            "headers": {
                "Authorization": f"Bearer {self.token.get_secret_value()}",
                "Accept": "application/json",
            },
            **client_kwargs,
        }
        return httpx.Client(**options)
