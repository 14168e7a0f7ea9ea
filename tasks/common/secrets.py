"""Secret masking: the secret values a block holds, and text with them replaced by ``***``.

Flow parameters carry block names only; a flow lists the secrets of the blocks it loaded
(``block_secrets``) and every failure reason, log line or result text that could quote an
SDK's error goes through ``mask`` (``tasks.common.retry.one_line_reason`` does it for
exceptions).

Example:
    ```python
    from prefect_aws import AwsCredentials

    from tasks.common.secrets import block_secrets, mask

    creds = AwsCredentials(aws_access_key_id="AKIA0000", aws_secret_access_key="s3cr3t-value")
    print(mask("denied for s3cr3t-value", block_secrets(creds)))  # denied for ***
    ```
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect.blocks.core import Block
from pydantic import SecretStr

MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words
_SECRET_NAME_PARTS = ("secret", "token", "password", "connection_string", "private_key")
_SERVICE_ACCOUNT_SECRETS = ("private_key", "private_key_id")


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret (``MIN_SECRET_LENGTH`` characters or more) replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return text


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
                found += [str(secret[k]) for k in _SERVICE_ACCOUNT_SECRETS if secret.get(k)]
        elif isinstance(value, str) and any(p in field_name.lower() for p in _SECRET_NAME_PARTS):
            found.append(value)
    return [s for s in found if s and len(s) >= MIN_SECRET_LENGTH]
