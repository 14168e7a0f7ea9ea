"""Secret masking: the secret values a block holds, and text with them replaced by ``***``.

Flow parameters carry block names only; a flow lists the secrets of the blocks it loaded
(``block_secrets``) and every failure reason, log line or result text that could quote an
SDK's error goes through ``mask`` (``tasks.common.retry.one_line_reason`` does it for
exceptions).

What counts as a secret of a block, field by field and inside dict/list values (a
kubeconfig in ``KubernetesClusterConfig.config``, a service account in a ``SecretDict``,
``credential_kwargs``...):

- every ``SecretStr`` / ``SecretBytes`` and every string of a ``SecretDict`` whose key is
  not a known public field (a service account's ``client_email``, ``token_uri``...);
- a value whose key (field name or dict key, ``snake_case``, ``kebab-case`` or
  ``camelCase``) names a secret: ``token``, ``secret``, ``password``, ``private_key``,
  ``key_data``, ``api_key``, ``connection_string``... but not a reference to one
  (``token_file``, ``token_uri``, ``secret_name``, ``token_type``, ``access_key_id``...).
  A dict or list under such a key is secret as a whole (every string in it). So in a
  kubeconfig the user's ``token``, ``password``, ``client-key-data`` (and its
  base64-decoded PEM) and an auth-provider's ``id-token``, ``refresh-token`` and
  ``client-secret`` are secrets; ``client-certificate-data`` and
  ``certificate-authority-data`` are not;
- ``{"name": ..., "value": ...}`` pairs (an exec plugin's ``env``, a container's env)
  whose name names a secret (``AWS_SECRET_ACCESS_KEY``, ``API_KEY``, ``GITHUB_TOKEN``), and
  any env value that looks like a credential (a JWT, a PEM private key);
  ``--token=...`` / ``--password ...`` style arguments in an ``args`` list;
- the password of a URL with credentials (``postgresql://user:pass@host``) anywhere.

Example:
    ```python
    from prefect_aws import AwsCredentials

    from tasks.common.secrets import block_secrets, mask

    creds = AwsCredentials(aws_access_key_id="AKIA0000", aws_secret_access_key="s3cr3t-value")
    print(mask("denied for s3cr3t-value", block_secrets(creds)))  # denied for ***
    ```
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import SecretBytes, SecretStr

MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words
# parts of a normalized (snake_case) key that name a secret value
_SECRET_NAME_PARTS = (
    "secret",
    "token",
    "password",
    "passwd",
    "passphrase",
    "connection_string",
    "private_key",
    "key_data",
    "api_key",
    "apikey",
    "access_key",
    "signing_key",
)
# ...unless the key ends like a reference to a secret rather than the secret itself
_REFERENCE_SUFFIXES = (
    "_file",
    "_path",
    "_id",
    "_uri",
    "_url",
    "_endpoint",
    "_name",
    "_type",
    "_expiry",
    "_expires_at",
    "_expires_in",
    "_env",
    "_ref",
    "_version",
)
_ALWAYS_SECRET = frozenset({"private_key_id"})  # a service account's key id
# keys of secret-holding dicts (service account info) that are public
_PUBLIC_KEYS = frozenset(
    {
        "type",
        "project_id",
        "client_email",
        "client_id",
        "auth_uri",
        "token_uri",
        "auth_provider_x509_cert_url",
        "client_x509_cert_url",
        "universe_domain",
        "account",
        "quota_project_id",
        "audience",
        "subject_token_type",
        "service_account_impersonation_url",
    }
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_JWT = re.compile(r"^eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*$")
_PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_FLAG = re.compile(r"^--?(?P<name>[\w.-]+)(?:=(?P<value>.*))?$", re.DOTALL)


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret (``MIN_SECRET_LENGTH`` characters or more) replaced by ``***``."""
    for secret in sorted(set(secrets), key=len, reverse=True):  # longest first: no partial hits
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return text


def normalize_key(name: Any) -> str:
    """``clientKeyData`` / ``client-key-data`` / ``Client Key Data`` -> ``client_key_data``."""
    return _NOT_WORD.sub("_", _CAMEL.sub("_", str(name)).lower()).strip("_")


def is_secret_name(name: Any) -> bool:
    """Whether a field, dict key or env variable name names a secret value."""
    key = normalize_key(name)
    if key in _ALWAYS_SECRET:
        return True
    if not any(part in key for part in _SECRET_NAME_PARTS):
        return False
    return not key.endswith(_REFERENCE_SUFFIXES)


def looks_like_secret(value: str) -> bool:
    """A JWT or a PEM private key, whatever the name it is stored under."""
    return bool(_JWT.match(value.strip()) or _PEM_KEY.search(value))


def _scalar(value: Any) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, SecretBytes):
        return value.get_secret_value().decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _with_decoded(name: Any, value: str) -> list[str]:
    """The value, and for ``*_data`` (base64 kubeconfig key data) its decoded text too."""
    out = [value]
    if normalize_key(name).endswith("_data"):
        with contextlib.suppress(binascii.Error, ValueError):
            out.append(base64.b64decode(value, validate=True).decode("utf-8").strip())
    return out


def _url_password(value: str) -> list[str]:
    if "://" not in value or "@" not in value:
        return []
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        return []
    return [password] if password else []


def _all_strings(value: Any) -> list[str]:
    """Every string (or number) inside ``value``: a whole value under a secret key."""
    if isinstance(value, Block):
        return block_secrets(value) + [
            s for f in type(value).model_fields for s in _all_strings(getattr(value, f, None))
        ]
    if hasattr(value, "get_secret_value") and not isinstance(value, SecretStr | SecretBytes):
        value = value.get_secret_value()  # SecretDict
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _all_strings(v)]
    if isinstance(value, list | tuple | set):
        return [s for v in value for s in _all_strings(v)]
    text = _scalar(value)
    return [text] if text else []


def _args_secrets(args: list[Any]) -> list[str]:
    """``--token=abc`` and ``--password abc`` in an argument list."""
    found: list[str] = []
    for i, arg in enumerate(args):
        match = _FLAG.match(arg) if isinstance(arg, str) else None
        if not match or not is_secret_name(match["name"]):
            continue
        if match["value"] is not None:
            found.append(match["value"])
        elif i + 1 < len(args) and isinstance(args[i + 1], str):
            found.append(args[i + 1])
    return found


def nested_secrets(value: Any, name: Any = None, *, secret_container: bool = False) -> list[str]:
    """The secrets inside one value stored under ``name`` (see the module docstring).

    Args:
        value: a field's or dict entry's value: a block, a secret type, a dict, a list
            or a scalar.
        name: the field name or dict key it is stored under (``None`` for list items).
        secret_container: the value came from a ``SecretDict``: every string in it is
            secret except the known public keys.
    """
    if isinstance(value, Block):
        return block_secrets(value)
    if isinstance(value, SecretStr | SecretBytes):
        text = _scalar(value)
        return _with_decoded(name, text) if text else []
    if hasattr(value, "get_secret_value"):  # SecretDict (GCP service account info)
        return nested_secrets(value.get_secret_value(), name, secret_container=True)
    if name is not None and is_secret_name(name):
        if isinstance(value, str):
            return _with_decoded(name, value)
        return _all_strings(value)
    if isinstance(value, Mapping):
        return _mapping_secrets(value, secret_container)
    if isinstance(value, list | tuple):
        found = _args_secrets(list(value)) if normalize_key(name or "") == "args" else []
        for item in value:
            found += nested_secrets(item, None, secret_container=secret_container)
        return found
    text = _scalar(value)
    if text is None:
        return []
    if secret_container and name is not None and normalize_key(name) not in _PUBLIC_KEYS:
        return [text]
    return _url_password(text) + ([text] if looks_like_secret(text) else [])


def _mapping_secrets(value: Mapping[Any, Any], secret_container: bool) -> list[str]:
    found: list[str] = []
    pair_name = value.get("name") if isinstance(value.get("name"), str) else None
    if pair_name is not None and "value" in value:  # an env entry {"name": ..., "value": ...}
        text = _scalar(value.get("value"))
        if text and (is_secret_name(pair_name) or looks_like_secret(text)):
            found.append(text)
    for key, item in value.items():
        found += nested_secrets(item, key, secret_container=secret_container)
    return found


def block_secrets(block: Any) -> list[str]:
    """Every secret value ``block`` (and the blocks and dicts nested in it) holds."""
    if not isinstance(block, Block):
        return []
    found: list[str] = []
    for field_name in type(block).model_fields:
        found += nested_secrets(getattr(block, field_name, None), field_name)
    unique = dict.fromkeys(s for s in found if s and len(s) >= MIN_SECRET_LENGTH)
    return list(unique)
