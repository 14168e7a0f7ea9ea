"""Refuse secrets in ``opsflow.toml``: the config file names blocks, never their contents.

A key whose name says it holds a secret (``client_secret``, ``api_key``, ``token``,
``password``, ...) or a value that looks like one (an AWS secret access key or access key
id, a PEM private key, a bearer token or JWT, a vendor token prefix, a URL with a
password in it) is reported by its dotted path; the value itself is never repeated.
Nothing here imports Prefect, so the check runs before any server starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

# Key-name parts that mean "this holds a secret" (split on _, -, ., spaces and camelCase).
_SECRET_PARTS = {"key", "token", "secret", "password", "passwd", "pwd", "apikey", "bearer"}
_SECRET_PREFIXES = ("secret", "password", "token", "privatekey", "apikey", "accesskey")
# Keys of opsflow's own parameters that contain one of those words but hold no secret.
NOT_SECRET_KEYS = {"tag_key"}  # a cost allocation tag's key, e.g. "team"

_VALUE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"), "an AWS access key id"),
    (re.compile(r"(?i)\bbearer\s+[a-z0-9\-._~+/]{8,}"), "a bearer token"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\."), "a JSON web token"),
    (
        re.compile(r"\b(?:sntry[su]_|glsa_|ghp_|gho_|github_pat_|xox[abprs]-)[A-Za-z0-9_\-]{8,}"),
        "an API token",
    ),
    (re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]+:[^/\s@]+@"), "a URL with a password"),
)
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _name_parts(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [p for p in re.split(r"[^a-z0-9]+", spaced.lower()) if p]


def secret_key_name(name: str) -> bool:
    """True when a key's name says it holds a secret (block names never do)."""
    lowered = name.lower()
    if lowered in NOT_SECRET_KEYS or lowered.endswith(("_block", "_blocks")):
        return False
    parts = _name_parts(name)
    joined = "".join(parts)
    return bool(set(parts) & _SECRET_PARTS) or joined.startswith(_SECRET_PREFIXES)


def secret_value_kind(value: str) -> str | None:
    """What secret ``value`` looks like (``"an AWS secret access key"``), or None."""
    for pattern, kind in _VALUE_PATTERNS:
        if pattern.search(value):
            return kind
    for candidate in _AWS_SECRET.findall(value):
        classes = (r"[a-z]", r"[A-Z]", r"[0-9]")
        if all(re.search(c, candidate) for c in classes):
            return "an AWS secret access key"
    if "://" in value:
        try:
            if urlsplit(value.strip()).password:
                return "a URL with a password"
        except ValueError:
            pass
    return None


def _walk(node: Any, path: str) -> Iterator[tuple[str, str | None, Any]]:
    """(dotted path, key name or None, value) for every key and leaf under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, str(key), value
            yield from _walk(value, child)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, None, node


def find_secrets(document: dict[str, Any]) -> list[str]:
    """One line per secret-looking key or value, naming its path and why (never the value)."""
    found: list[str] = []
    for path, key, value in _walk(document, ""):
        if key is not None:
            if secret_key_name(key):
                found.append(f"{path}: a key named like a secret")
            continue
        if isinstance(value, str) and (kind := secret_value_kind(value)):
            found.append(f"{path}: the value looks like {kind}")
    return found
