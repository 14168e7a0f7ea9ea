"""Load the credential and storage blocks a flow parameter names, and list their secrets.

Flow parameters carry block *names*, never secrets. A wrong name is bad input: it is
rejected, naming the parameter, before any outside call. The secret values a block
holds are collected so failure reasons can mask them (``tasks.common.retry.one_line_reason``).
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import SecretStr

# parameter kind -> "module:class" of the block it loads (imported lazily)
BLOCK_CLASSES = {
    "aws": "prefect_aws:AwsCredentials",
    "gcp": "prefect_gcp:GcpCredentials",
    "azure": "blocks.azure:AzureCredentials",
    "azure-blob": "prefect_azure:AzureBlobStorageCredentials",
    "kubernetes": "prefect_kubernetes.credentials:KubernetesCredentials",
    "sentry": "blocks.sentry:SentryCredentials",
    "grafana": "blocks.grafana:GrafanaCredentials",
}
_SECRET_NAME_PARTS = ("secret", "token", "password", "connection_string", "private_key")


def _block_class(kind: str) -> type[Block]:
    import importlib

    module, _, attr = BLOCK_CLASSES[kind].partition(":")
    return getattr(importlib.import_module(module), attr)


def load_block(name: str | None, field: str, kind: str | None = None) -> Any:
    """The block ``name`` names, for the flow parameter ``field``.

    Args:
        name: block document name. With ``kind``, the bare name (``prod``); without it,
            ``<block-type-slug>/<name>`` (``s3-bucket/finops``), any block type.
        field: parameter name, used in the error message.
        kind: one of ``BLOCK_CLASSES``; with no ``name`` the class's default instance
            is returned (the SDK's default credential chain).

    Returns:
        The loaded block.

    Raises:
        ValueError: no such block, naming ``field``.

    Example:
        ```python
        creds = load_block("prod", "aws_credentials_block", kind="aws")
        ```
    """
    cls = _block_class(kind) if kind else Block
    if not name:
        if kind is None:
            raise ValueError(f"{field}: give a block as '<block-type-slug>/<name>'")
        try:
            return cls()
        except Exception as exc:  # e.g. no Application Default Credentials
            raise ValueError(f"{field}: no block named and no default credentials: {exc}") from None
    if kind is None and "/" not in name:
        raise ValueError(f"{field}: {name!r} must be '<block-type-slug>/<name>', e.g. s3-bucket/x")
    try:
        return cls.load(name)
    except (ValueError, KeyError) as exc:
        what = f"{cls.get_block_type_name()} block" if kind else "block"
        raise ValueError(f"{field}: no {what} named {name!r}") from exc


def block_secrets(block: Any) -> list[str]:
    """Every secret value ``block`` (and the blocks nested in it) holds."""
    found: list[str] = []
    if not isinstance(block, Block):
        return found
    for field_name in type(block).model_fields:
        value = getattr(block, field_name, None)
        if isinstance(value, Block):
            found += block_secrets(value)
        elif isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif hasattr(value, "get_secret_value"):  # SecretDict (GCP service account info)
            secret = value.get_secret_value()
            if isinstance(secret, dict):
                found += [
                    str(secret[k]) for k in ("private_key", "private_key_id") if secret.get(k)
                ]
        elif isinstance(value, str) and any(p in field_name.lower() for p in _SECRET_NAME_PARTS):
            found.append(value)
    return [s for s in found if s and len(s) >= 4]
