"""Cost export files wherever they are: a local path, HTTPS, S3, GCS or Azure Blob.

``local_export`` turns an export location into a local file the normalizer can read,
downloading it (streamed, into a temp file renamed only when complete) when it is
remote. Remote access goes through the clouds' own credentials blocks (prefect-aws,
prefect-gcp, prefect-azure) or a Prefect storage block; ``storage_options`` and
``block_location`` map those blocks to fsspec settings, also for ``tasks.costs.dataset``.

A download is one attempt: the task that calls ``local_export`` retries it, with
``tasks.common.retry.retry_on_transient`` (the errors keep their httpx / botocore types so that
decision still works), so SDK-level retries are turned off where the SDK allows it.
Pre-signed URLs carry their signature in the query string: it never reaches a log line
or an exception.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx

from tasks.common.atomic import atomic_path
from tasks.common.retry import task_logger

HTTP_SCHEMES = ("http", "https")
# URL scheme -> the fsspec protocol family it belongs to
OBJECT_SCHEMES = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gs",
    "gcs": "gs",
    "az": "az",
    "abfs": "az",
    "abfss": "az",
}
CHUNK_BYTES = 1 << 20
HTTP_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# botocore settings for s3fs: one attempt per call (tasks retry), bounded waits
S3_CONFIG = {
    "retries": {"total_max_attempts": 1, "mode": "standard"},
    "connect_timeout": 10,
    "read_timeout": 60,
}
_QUERY = re.compile(r"\?[^\s'\"<>]*")


class _NoQueryInHttpxLogs(logging.Filter):
    """httpx logs each request's full URL at INFO: drop query strings (signatures) from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                a.copy_with(query=None) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


_httpx_logger = logging.getLogger("httpx")
if not any(isinstance(f, _NoQueryInHttpxLogs) for f in _httpx_logger.filters):
    _httpx_logger.addFilter(_NoQueryInHttpxLogs())


# ----------------------------------------------------------------- blocks -> fsspec


def _is(obj: Any, module: str, name: str) -> bool:
    """``isinstance`` against an optional integration's class, importing it only if needed."""
    if type(obj).__module__.split(".")[0] != module.split(".")[0]:
        return False
    import importlib

    return isinstance(obj, getattr(importlib.import_module(module), name))


def _s3_options(creds: Any | None) -> dict[str, Any]:
    opts: dict[str, Any] = {"config_kwargs": dict(S3_CONFIG)}
    if creds is None:
        return opts
    client_kwargs: dict[str, Any] = {}
    if _is(creds, "prefect_aws", "MinIOCredentials"):
        opts["key"] = creds.minio_root_user
        opts["secret"] = creds.minio_root_password.get_secret_value()
    elif creds.assume_role_arn:  # the block's own session assumes the role
        frozen = creds.get_boto3_session().get_credentials().get_frozen_credentials()
        opts.update(key=frozen.access_key, secret=frozen.secret_key, token=frozen.token)
    else:
        if creds.aws_access_key_id:
            opts["key"] = creds.aws_access_key_id
        if creds.aws_secret_access_key:
            opts["secret"] = creds.aws_secret_access_key.get_secret_value()
        if creds.aws_session_token:
            opts["token"] = creds.aws_session_token
        if creds.profile_name:
            opts["profile"] = creds.profile_name
    if creds.region_name:
        client_kwargs["region_name"] = creds.region_name
    params = creds.aws_client_parameters
    if params.endpoint_url:
        client_kwargs["endpoint_url"] = params.endpoint_url
    if params.api_version:
        client_kwargs["api_version"] = params.api_version
    verify = params.verify_cert_path or params.verify
    if verify is not None and verify is not True:
        client_kwargs["verify"] = str(verify) if isinstance(verify, Path) else verify
    if params.use_ssl is False:
        opts["use_ssl"] = False
    config = dict(params.config or {})
    if str(config.get("signature_version", "")).lower() == "unsigned":
        config.pop("signature_version")
        opts["anon"] = True
    opts["config_kwargs"].update(config)  # the block's botocore config wins
    if client_kwargs:
        opts["client_kwargs"] = client_kwargs
    return opts


def _gcs_options(creds: Any | None) -> dict[str, Any]:
    if creds is None:
        return {}
    opts: dict[str, Any] = {"token": "google_default"}
    if creds.service_account_info or creds.service_account_file:
        opts["token"] = creds.get_credentials_from_service_account()
    if creds.project:
        opts["project"] = creds.project
    return opts


def _azure_options(creds: Any | None) -> dict[str, Any]:
    if creds is None:
        return {"anon": False}  # DefaultAzureCredential; account from AZURE_STORAGE_ACCOUNT_NAME
    if creds.connection_string is not None:
        return {"connection_string": creds.connection_string.get_secret_value()}
    url = urlsplit(creds.account_url or "")
    host = url.hostname or ""
    if url.scheme != "https" or not re.match(r"[^.]+\.(blob|dfs)\.", host):
        raise ValueError(
            "azure_credentials.account_url: adlfs needs https://<account>.blob.core.windows.net; "
            "for an emulator or a custom endpoint use a connection string with BlobEndpoint="
        )
    opts: dict[str, Any] = {"account_name": host.split(".")[0], "account_host": url.netloc}
    if creds.client_id is not None:
        opts.update(
            client_id=creds.client_id,
            tenant_id=creds.tenant_id,
            client_secret=creds.client_secret.get_secret_value(),
        )
    else:
        opts["anon"] = False
    return opts


def storage_options(protocol: str, credentials: Any | None = None) -> dict[str, Any]:
    """fsspec storage options for an object-store protocol, from a credentials block.

    The result holds secrets (keys, connection strings, token objects): pass it to
    fsspec, never to a log, a result or an exception.

    Args:
        protocol: ``s3``, ``gs`` or ``az`` (``s3a``, ``gcs``, ``abfs``, ``abfss`` too).
        credentials: prefect-aws ``AwsCredentials`` / ``MinIOCredentials`` for ``s3``,
            prefect-gcp ``GcpCredentials`` for ``gs``, prefect-azure
            ``AzureBlobStorageCredentials`` for ``az``; ``None`` for the SDK's default
            credential chain.

    Returns:
        Keyword arguments for ``s3fs`` / ``gcsfs`` / ``adlfs`` (``fsspec.filesystem``).

    Example:
        ```python
        import fsspec
        from prefect_aws import AwsCredentials

        from tasks.costs.exports import storage_options

        opts = storage_options("s3", AwsCredentials.load("BLOCK_NAME"))
        fs = fsspec.filesystem("s3", **opts)
        print(fs.ls("my-billing-bucket/focus"))
        ```
    """
    family = OBJECT_SCHEMES.get(protocol.lower())
    expected = {
        "s3": (("prefect_aws", "AwsCredentials"), ("prefect_aws", "MinIOCredentials")),
        "gs": (("prefect_gcp", "GcpCredentials"),),
        "az": (("prefect_azure", "AzureBlobStorageCredentials"),),
    }
    if family is None:
        raise ValueError(f"protocol: {protocol!r} is not one of {sorted(OBJECT_SCHEMES)}")
    if credentials is not None and not any(_is(credentials, *cls) for cls in expected[family]):
        names = " or ".join(name for _, name in expected[family])
        raise TypeError(
            f"credentials: {protocol}:// needs a {names} block, not {type(credentials).__name__}"
        )
    return {"s3": _s3_options, "gs": _gcs_options, "az": _azure_options}[family](credentials)


def filesystem(url: str, options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and in-filesystem path for an object-store ``url``.

    GCS goes through gcsfs' JSON-API class: its default (experimental zonal/HNS) class
    first probes each bucket's layout over the Storage Control gRPC API, which plain
    object reads do not need and which a least-privilege reader or an emulator cannot
    answer (each probe then waits for its timeout).

    Args:
        url: e.g. ``s3://bucket/key``, ``gs://bucket/key``, ``az://container/key``.
        options: from ``storage_options`` / ``block_location``.

    Returns:
        ``(filesystem, path)``.
    """
    import fsspec

    options = options or {}
    if OBJECT_SCHEMES.get(urlsplit(url).scheme.lower()) == "gs":
        from gcsfs.core import GCSFileSystem

        fs = GCSFileSystem(**options)
        return fs, fs._strip_protocol(url)
    return fsspec.core.url_to_fs(url, **options)


def _block_parts(block: Any) -> tuple[str, tuple[str, ...], Any]:
    """(scheme, (bucket, folder), credentials block) of a Prefect storage block."""
    if _is(block, "prefect_aws.s3", "S3Bucket"):
        return "s3", (block.bucket_name, block.bucket_folder), block.credentials
    if _is(block, "prefect_gcp.cloud_storage", "GcsBucket"):
        return "gs", (block.bucket, block.bucket_folder), block.gcp_credentials
    if _is(block, "prefect_azure.blob_storage", "AzureBlobStorageContainer"):
        return "az", (block.container_name, block.base_folder or ""), block.credentials
    raise TypeError(
        f"block: {type(block).__name__} is not an S3Bucket, GcsBucket or "
        "AzureBlobStorageContainer block"
    )


def block_location(block: Any, path: str = "") -> tuple[str, dict[str, Any]]:
    """The fsspec URL and storage options of ``path`` inside a Prefect storage block.

    Args:
        block: a prefect-aws ``S3Bucket``, prefect-gcp ``GcsBucket`` or prefect-azure
            ``AzureBlobStorageContainer`` block; its folder (``bucket_folder`` /
            ``base_folder``) is the root ``path`` is relative to.
        path: a path inside that folder, e.g. ``costs``.

    Returns:
        ``(url, storage_options)``, e.g. ``("s3://bucket/folder/costs", {...})``; the
        options hold secrets (see ``storage_options``).

    Example:
        ```python
        from prefect_aws.s3 import S3Bucket

        from tasks.costs.exports import block_location

        url, opts = block_location(S3Bucket.load("BLOCK_NAME"), "costs")
        print(url)  # s3://<bucket>/<folder>/costs
        ```
    """
    scheme, parts, creds = _block_parts(block)
    joined = "/".join(p.strip("/") for p in (*parts, path) if p and p.strip("/"))
    return f"{scheme}://{joined}", storage_options(scheme, creds)


# ------------------------------------------------------------------ local_export


def safe_location(location: str) -> str:
    """``location`` as it may be shown: no query string, fragment or user info."""
    parts = urlsplit(location)
    if parts.scheme.lower() in HTTP_SCHEMES or parts.scheme.lower() in OBJECT_SCHEMES:
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    return _QUERY.sub("", location)


def _file_name(location: str) -> str:
    """The export's own file name (suffix kept), safe for a local path."""
    name = PurePosixPath(unquote(urlsplit(location).path)).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return name[-150:] or "export"


def _local_path(location: str) -> Path:
    parts = urlsplit(location)
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"location: {location!r} names a remote host; use a local path")
        path = Path(url2pathname(parts.path))
    else:
        path = Path(location).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"location: no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"location: {path} is a directory, not an export file")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"location: {path} is not readable")
    return path.resolve()


def _clean_http_error(exc: httpx.HTTPError, url: str) -> httpx.HTTPError:
    """The same kind of error (so retry decisions hold) without the URL's query string."""
    shown = safe_location(url)
    request = httpx.Request("GET", shown)
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        response = httpx.Response(status, request=request)
        message = f"HTTP {status} {response.reason_phrase} from GET {shown}"
        return httpx.HTTPStatusError(message, request=request, response=response)
    message = _QUERY.sub("", str(exc).replace(url, shown)) or type(exc).__name__
    try:
        clean = type(exc)(f"{message} (GET {shown})", request=request)
    except TypeError:  # an httpx error type with another signature
        clean = httpx.TransportError(f"{message} (GET {shown})", request=request)
    return clean


def _download_http(url: str, part: Path) -> None:
    error = None
    try:
        with (
            httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            response.raise_for_status()
            with part.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    out.write(chunk)
    except httpx.HTTPError as exc:
        error = _clean_http_error(exc, url)
    if error is not None:  # raised here so the original (with the URL) is not its context
        raise error


def _download_fsspec(location: str, part: Path, options: dict[str, Any]) -> None:
    fs, rpath = filesystem(location, options)
    fs.invalidate_cache()
    try:
        info = fs.info(rpath)
    except FileNotFoundError:
        raise FileNotFoundError(f"location: no such object: {safe_location(location)}") from None
    if info.get("type") == "directory":
        raise IsADirectoryError(f"location: {safe_location(location)} is a folder, not a file")
    fs.get_file(rpath, str(part))


def _is_missing(exc: BaseException) -> bool:
    """Whether a storage block's download error means "no such object"."""
    for err in (exc, exc.__cause__):
        name = type(err).__name__
        if name in ("NotFound", "ResourceNotFoundError"):  # google-api-core, azure-core
            return True
        response = getattr(err, "response", None)  # botocore ClientError
        if name == "ClientError" and isinstance(response, dict):
            code = str((response.get("Error") or {}).get("Code", ""))
            return code in ("404", "NoSuchKey", "NotFound")
    return False


def _download_block(block: Any, path: str, part: Path) -> None:
    missing = False
    try:
        result = block.download_object_to_path(path, part)
        if inspect.isawaitable(result):  # sync_compatible methods called from async code
            from prefect.utilities.asyncutils import run_coro_as_sync

            run_coro_as_sync(result)
    except Exception as exc:
        if not _is_missing(exc):
            raise
        missing = True
    if missing:
        raise FileNotFoundError(
            f"location: no such object {path!r} in the {type(block).__name__} block"
        )


def _credentials_for(family: str, given: dict[str, Any], storage_block: Any) -> Any:
    if given[family] is not None:
        return given[family]
    if storage_block is not None:  # same cloud as the storage block: use its credentials
        scheme, _, creds = _block_parts(storage_block)
        if scheme == family:
            return creds
    return None


@contextmanager
def local_export(
    location: str | os.PathLike,
    *,
    aws_credentials: Any = None,
    gcp_credentials: Any = None,
    azure_credentials: Any = None,
    storage_block: Any = None,
) -> Iterator[Path]:
    """A local file holding the export at ``location``, for the duration of the block.

    Local files are used in place. Anything else is streamed into a temporary folder
    (the file keeps its original name and suffix; the reader sniffs the format from the
    bytes anyway), renamed into place only once complete, and deleted on exit.

    Args:
        location: a local path or ``file://`` URL; an ``https://`` (or ``http://``) URL,
            pre-signed ones included; an ``s3://``, ``gs://``, ``az://`` / ``abfs://``
            URL; or, with ``storage_block``, a path inside that block's folder.
        aws_credentials: prefect-aws ``AwsCredentials`` (or ``MinIOCredentials``) for
            ``s3://``; default credential chain when omitted.
        gcp_credentials: prefect-gcp ``GcpCredentials`` for ``gs://``.
        azure_credentials: prefect-azure ``AzureBlobStorageCredentials`` for ``az://``.
        storage_block: a loaded ``S3Bucket`` / ``GcsBucket`` / ``AzureBlobStorageContainer``
            for relative locations (its credentials also serve URLs of the same cloud).

    Returns:
        A context manager yielding the local ``Path``.

    Raises:
        ValueError: empty location or unsupported scheme (before any download).
        FileNotFoundError / IsADirectoryError / PermissionError: naming the location.
        httpx.HTTPStatusError and other download errors, query strings removed.

    Example:
        ```python
        import pyarrow.parquet as pq
        from prefect import flow
        from prefect_aws import AwsCredentials

        from tasks.costs.exports import local_export

        @flow
        def export_rows(location: str = "s3://billing/focus/2026-10.parquet") -> int:
            creds = AwsCredentials.load("BLOCK_NAME")
            with local_export(location, aws_credentials=creds) as path:
                return pq.read_metadata(path).num_rows
        ```
    """
    location = os.fspath(location) if isinstance(location, os.PathLike) else location
    if not isinstance(location, str) or not location.strip():
        raise ValueError("location: give a path or URL of an export file")
    location = location.strip()
    scheme = urlsplit(location).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter
        scheme = ""
    if scheme and scheme != "file" and scheme not in HTTP_SCHEMES + tuple(OBJECT_SCHEMES):
        raise ValueError(
            f"location: unsupported scheme {scheme!r} (use a path, file://, https://, s3://, "
            "gs:// or az://)"
        )
    if scheme == "file" or (not scheme and storage_block is None):
        yield _local_path(location)
        return
    given = {"s3": aws_credentials, "gs": gcp_credentials, "az": azure_credentials}
    family = OBJECT_SCHEMES.get(scheme)
    options = None
    if family:  # check the credentials before anything is created
        options = storage_options(scheme, _credentials_for(family, given, storage_block))
    logger = task_logger(__name__)
    folder = Path(tempfile.mkdtemp(prefix="opsflow-export-"))
    try:
        target = folder / _file_name(location)
        with atomic_path(target) as part:  # renamed onto target once complete
            if scheme in HTTP_SCHEMES:
                _download_http(location, part)
            elif options is not None:
                _download_fsspec(location, part, options)
            else:
                _download_block(storage_block, location, part)
        logger.info("Downloaded %s (%d bytes)", safe_location(location), target.stat().st_size)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)
