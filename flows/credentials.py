"""Load the credential and storage blocks a flow parameter names, and list their secrets.

Flow parameters carry block *names*, never secrets. A wrong name is bad input: it is
rejected, naming the parameter, before any outside call. The secret values a block
holds are listed by ``tasks.common.secrets.block_secrets`` so failure reasons can mask them.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block

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
