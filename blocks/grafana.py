"""Grafana HTTP API credentials: the instance URL and a service account token.

Grafana has no Prefect integration; this block holds the instance URL (Grafana Cloud's
``https://<stack>.grafana.net`` or your own) and a service account token sent as a
bearer token, plus the organization to act in when the token can see several.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

from blocks.sentry import http_base_url

if TYPE_CHECKING:
    import httpx


class GrafanaCredentials(Block):
    """Credentials for the Grafana HTTP API.

    Args:
        url: the Grafana instance, e.g. ``https://acme.grafana.net``.
        token: a service account token (``glsa_...``) with Viewer rights (annotations,
            dashboards, ``/api/ds/query``).
        org_id: the organization to act in (``X-Grafana-Org-Id``); None for the token's own.
        timeout_seconds: per-request timeout.

    Example:
        ```python
        from blocks.grafana import GrafanaCredentials

        creds = GrafanaCredentials.load("BLOCK_NAME")
        with creds.get_client() as client:
            client.get("/api/search", params={"type": "dash-db"})
        ```
    """

    _block_type_name = "Grafana Credentials"
    _logo_url = "https://grafana.com/static/assets/img/fav32.png"
    _documentation_url = "https://grafana.com/docs/grafana/latest/developers/http_api/"
    # a validation error must not echo the input: it may hold the token
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str = Field(description="Grafana instance URL.", title="URL")
    token: SecretStr = Field(description="Service account token (Bearer).")
    org_id: int | None = Field(default=None, ge=1, title="Organization ID")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_base_url(value, "url")

    def get_client(self, **client_kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` on ``url`` that sends the token as a bearer header.

        Args:
            client_kwargs: ``httpx.Client`` options overriding the defaults.
        """
        import httpx

        headers = {
            "Authorization": f"Bearer {self.token.get_secret_value()}",
            "Accept": "application/json",
        }
        if self.org_id is not None:
            headers["X-Grafana-Org-Id"] = str(self.org_id)
        options: dict[str, Any] = {
            "base_url": self.url,
            "timeout": httpx.Timeout(self.timeout_seconds, connect=10.0),
            "headers": headers,
            **client_kwargs,
        }
        return httpx.Client(**options)
