"""local_export and the block -> fsspec mapping, against real servers on loopback.

HTTPS: a threaded HTTP server behind TLS (a trustme CA the client trusts through
SSL_CERT_FILE). S3: the moto server, through an AwsCredentials block and through an
S3Bucket storage block. GCS: tests/servers/gcs.py (JSON API + OAuth token endpoint)
through STORAGE_EMULATOR_HOST with gcsfs and google-cloud-storage. Azure Blob:
tests/servers/azure_blob.py (Shared Key checked) through a connection string with adlfs
and azure-storage-blob.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import pytest

from tasks.common.retry import is_transient, one_line_reason
from tasks.costs.exports import block_location, local_export, safe_location, storage_options
from tests.servers import LocalServer, Seen
from tests.servers.azure_blob import AzureBlobServer
from tests.servers.gcp_catalog import new_rsa_key, service_account_info
from tests.servers.gcs import GcsServer

CANARY = "CANARY-s3cr3t-7f3a9c"  # a secret that must never show up anywhere
PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)  # several download chunks
MOTO_KEY = "AKIAEXPORTTEST"


def everything_said(exc: BaseException, caplog) -> str:
    """All the text an exception and the logs could show a person."""
    import traceback

    parts = [str(exc), repr(exc), one_line_reason(exc), caplog.text]
    parts += traceback.format_exception(exc)
    chained = exc.__cause__ or exc.__context__
    while chained is not None:
        parts.append(repr(chained))
        chained = chained.__cause__ or chained.__context__
    return "\n".join(parts)


def attempt(location, **access) -> None:
    """Open an export and let go of it (for the failure cases)."""
    with local_export(location, **access):
        pass


# ----------------------------------------------------------------------- local files


def test_local_path_and_file_url_are_used_in_place(tmp_path):
    export = tmp_path / "focus 2026-10.csv.gz"
    export.write_bytes(b"abc")
    with local_export(str(export)) as path:
        assert path == export.resolve()
        assert path.read_bytes() == b"abc"
    assert export.exists()  # never deleted: it is the caller's file
    with local_export(export.as_uri()) as path:  # file:// with a %20 in it
        assert path == export.resolve()
    with local_export(export) as path:  # a PathLike
        assert path == export.resolve()


def test_local_path_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match="location: no such file: .*nope.csv"):
        attempt(str(missing))
    with pytest.raises(IsADirectoryError, match=f"location: {tmp_path} is a directory"):
        attempt(str(tmp_path))
    with pytest.raises(ValueError, match="location: give a path or URL"):
        attempt("  ")
    with pytest.raises(ValueError, match="unsupported scheme 'ftp'"):
        attempt("ftp://example.com/x.csv")
    with pytest.raises(ValueError, match="remote host"):
        attempt("file://otherhost/x.csv")


def _said(check) -> str:
    """What ``check()`` raised, as ``"TypeName: message"`` (``""`` if nothing)."""
    try:
        check()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def _as_nobody(check) -> str:
    """``_said(check)`` in a forked child that gave up root for ``nobody`` (uid 65534).

    Root reads any file, so the permission check is exercised with root's privileges
    dropped for good, as CI (root) runs it; a non-root user just runs it.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, run, report, exit (never return to pytest)
        code = 3
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, _said(check).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child could not drop privileges"
    return said


def test_unreadable_local_file():
    # a folder anyone may enter, holding a file only its owner (root, or this user) may read
    folder = Path(tempfile.mkdtemp(prefix="opsflow-unreadable-"))
    try:
        folder.chmod(0o755)
        export = folder / "locked.csv"
        export.write_bytes(b"x")
        export.chmod(0o600)
        if os.geteuid() == 0:
            said = _as_nobody(lambda: attempt(str(export)))
        else:
            export.chmod(0)
            said = _said(lambda: attempt(str(export)))
            export.chmod(0o600)
        assert said == f"PermissionError: location: {export} is not readable"
        with local_export(str(export)) as path:  # while its owner reads it in place
            assert path.read_bytes() == b"x"
    finally:
        shutil.rmtree(folder)


# ----------------------------------------------------------------------------- HTTPS


class ExportFiles(LocalServer):
    """Serves bytes at paths, whatever the query (like pre-signed URLs of a bucket)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__()
        self.files = files

    def handle(self, seen: Seen):
        body = self.files.get(urlsplit(seen.path).path)
        if body is None:
            return 404, {"Content-Type": "text/plain"}, b"no such export"
        return 200, {"Content-Type": "application/octet-stream"}, body


@pytest.fixture
def https_files(tmp_path, monkeypatch):
    import trustme

    ca = trustme.CA()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))  # httpx trusts it (trust_env)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = ExportFiles({"/exports/focus-2026-10.csv.gz": PAYLOAD})
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    with server:
        server.base = f"https://127.0.0.1:{server.port}"
        yield server


def presigned(server, path: str) -> str:
    return f"{server.base}{path}?X-Amz-Credential=AKIA%2F20261001&X-Amz-Signature={CANARY}"


def test_https_download_streams_into_a_temp_file_removed_afterwards(https_files):
    url = presigned(https_files, "/exports/focus-2026-10.csv.gz")
    with local_export(url) as path:
        assert path.read_bytes() == PAYLOAD
        assert path.name == "focus-2026-10.csv.gz"  # original name and suffix kept
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no .part left
        folder = path.parent
    assert not folder.exists()
    assert https_files.requests[-1].path.endswith(CANARY)  # the signature was sent


def test_https_error_is_one_line_without_the_signature(https_files, caplog):
    caplog.set_level(logging.DEBUG)
    https_files.fail(403, {"Code": "SignatureDoesNotMatch"})
    with pytest.raises(httpx.HTTPStatusError) as info:
        attempt(presigned(https_files, "/exports/focus-2026-10.csv.gz"))
    exc = info.value
    assert CANARY not in everything_said(exc, caplog)
    assert "?" not in str(exc)
    assert one_line_reason(exc) == (
        "HTTPStatusError: HTTP 403 Forbidden from GET "
        f"{https_files.base}/exports/focus-2026-10.csv.gz"
    )
    assert exc.__context__ is None and exc.__cause__ is None
    assert is_transient(exc) is False  # a bad signature is not retried


def test_https_5xx_stays_retryable_and_missing_export_is_404(https_files, caplog):
    caplog.set_level(logging.DEBUG)
    https_files.fail(503, {"Code": "SlowDown"})
    with pytest.raises(httpx.HTTPStatusError) as info:
        attempt(presigned(https_files, "/exports/focus-2026-10.csv.gz"))
    assert is_transient(info.value) is True
    assert CANARY not in everything_said(info.value, caplog)
    with pytest.raises(httpx.HTTPStatusError, match="HTTP 404 Not Found") as info:
        attempt(presigned(https_files, "/exports/other.csv"))
    assert CANARY not in everything_said(info.value, caplog)
    # the httpx request log line (INFO) is there, without the query string
    assert "/exports/other.csv" in caplog.text


class _Truncating(BaseHTTPRequestHandler):
    """Promises more bytes than it sends, then hangs up: a download dropped mid-way."""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD[:100_000])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        return


def test_a_dropped_download_leaves_no_file(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where local_export makes its folder
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Truncating)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/x.parquet?sig={CANARY}"
        with pytest.raises(httpx.RemoteProtocolError) as info, local_export(url):
            pytest.fail("a partial download must not be yielded")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert is_transient(info.value) is True
    assert CANARY not in everything_said(info.value, caplog)
    assert list(tmp_path.iterdir()) == []  # neither the .part file nor its folder remain


def test_safe_location_drops_query_and_user_info():
    assert (
        safe_location("https://user:pw@host.example:8443/a/b.csv?sig=x#frag")
        == "https://host.example:8443/a/b.csv"
    )
    assert safe_location("s3://bucket/key.csv?versionId=1") == "s3://bucket/key.csv"


# -------------------------------------------------------------------------------- S3


@pytest.fixture
def s3_bucket(moto_url):
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_url,
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key="x",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="billing-exports")
    s3.put_object(Bucket="billing-exports", Key="exports/focus/2026-10.parquet", Body=PAYLOAD)
    return s3


def aws_block(moto_url, secret: str = CANARY):
    from prefect_aws import AwsCredentials

    return AwsCredentials(
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": moto_url},
    )


def test_s3_url_with_aws_credentials_block(moto_url, s3_bucket, caplog):
    caplog.set_level(logging.DEBUG)
    creds = aws_block(moto_url)
    with local_export(
        "s3://billing-exports/exports/focus/2026-10.parquet", aws_credentials=creds
    ) as path:
        assert path.read_bytes() == PAYLOAD
        assert path.name == "2026-10.parquet"
    with pytest.raises(FileNotFoundError) as info:
        attempt("s3://billing-exports/exports/missing.csv", aws_credentials=creds)
    assert str(info.value) == "location: no such object: s3://billing-exports/exports/missing.csv"
    with pytest.raises(IsADirectoryError, match="is a folder"):
        attempt("s3://billing-exports/exports/focus", aws_credentials=creds)
    assert CANARY not in everything_said(info.value, caplog)


def test_s3_paths_through_an_s3bucket_storage_block(moto_url, s3_bucket, caplog):
    from prefect_aws.s3 import S3Bucket

    caplog.set_level(logging.DEBUG)
    block = S3Bucket(
        bucket_name="billing-exports", bucket_folder="exports", credentials=aws_block(moto_url)
    )
    with local_export("focus/2026-10.parquet", storage_block=block) as path:
        assert path.read_bytes() == PAYLOAD
        assert path.name == "2026-10.parquet"
        folder = path.parent
    assert not folder.exists()
    # a full s3:// URL of the same cloud borrows the storage block's credentials
    with local_export(
        "s3://billing-exports/exports/focus/2026-10.parquet", storage_block=block
    ) as path:
        assert path.read_bytes() == PAYLOAD
    with pytest.raises(FileNotFoundError) as info:
        attempt("focus/missing.parquet", storage_block=block)
    assert (
        str(info.value) == "location: no such object 'focus/missing.parquet' in the S3Bucket block"
    )
    assert CANARY not in everything_said(info.value, caplog)


# ------------------------------------------------------------------------------- GCS


@pytest.fixture(scope="module")
def gcp_key():
    return new_rsa_key()


@pytest.fixture
def gcs(gcp_key, monkeypatch):
    with GcsServer(gcp_key.public_key()) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        server.put("billing", "exports/focus/2026-10.csv.gz", PAYLOAD)
        yield server


def gcp_block(server, key):
    from prefect_gcp import GcpCredentials

    return GcpCredentials(service_account_info=service_account_info(key, server.token_uri, "k1"))


def test_gs_url_with_gcp_credentials_block(gcs, gcp_key, caplog):
    caplog.set_level(logging.DEBUG)
    creds = gcp_block(gcs, gcp_key)
    private_key = creds.service_account_info.get_secret_value()["private_key"]
    with local_export("gs://billing/exports/focus/2026-10.csv.gz", gcp_credentials=creds) as path:
        assert path.read_bytes() == PAYLOAD
    media = [s for s in gcs.requests if s.path.startswith("/download/")]
    assert media and all(s.headers["authorization"].startswith("Bearer ya29.") for s in media)
    assert gcs.jwt_claims[-1]["iss"] == "pricing-reader@opsflow-test.iam.gserviceaccount.com"
    with pytest.raises(FileNotFoundError) as info:
        attempt("gs://billing/exports/missing.csv", gcp_credentials=creds)
    assert str(info.value) == "location: no such object: gs://billing/exports/missing.csv"
    with pytest.raises(IsADirectoryError):
        attempt("gs://billing/exports/focus", gcp_credentials=creds)
    body_line = private_key.splitlines()[1]
    assert body_line not in everything_said(info.value, caplog)


def test_gs_paths_through_a_gcsbucket_storage_block(gcs, gcp_key):
    from prefect_gcp.cloud_storage import GcsBucket

    block = GcsBucket(
        bucket="billing", bucket_folder="exports", gcp_credentials=gcp_block(gcs, gcp_key)
    )
    with local_export("focus/2026-10.csv.gz", storage_block=block) as path:
        assert path.read_bytes() == PAYLOAD
        assert path.name == "2026-10.csv.gz"
    with pytest.raises(FileNotFoundError, match="'focus/gone.csv' in the GcsBucket block"):
        attempt("focus/gone.csv", storage_block=block)


# ------------------------------------------------------------------------ Azure Blob


@pytest.fixture
def azure():
    with AzureBlobServer() as server:
        server.put("exports", "focus/2026-10.parquet", PAYLOAD)
        yield server


def azure_block(server, key: str | None = None):
    from prefect_azure import AzureBlobStorageCredentials

    conn = server.connection_string
    if key is not None:
        conn = conn.replace(server.key, key)
    return AzureBlobStorageCredentials(connection_string=conn)


@pytest.mark.parametrize("scheme", ["az", "abfs"])
def test_az_url_with_azure_blob_credentials(azure, scheme):
    creds = azure_block(azure)
    with local_export(f"{scheme}://exports/focus/2026-10.parquet", azure_credentials=creds) as path:
        assert path.read_bytes() == PAYLOAD
    assert azure.auth_failures == 0
    assert azure.requests and all(
        s.headers["authorization"].startswith("SharedKey devstoreaccount1:") for s in azure.requests
    )
    with pytest.raises(FileNotFoundError, match="no such object: az://exports/focus/gone.csv"):
        attempt("az://exports/focus/gone.csv", azure_credentials=creds)


def test_az_wrong_account_key_fails_without_showing_it(azure, caplog):
    import base64

    caplog.set_level(logging.DEBUG)
    wrong = base64.b64encode(CANARY.encode() * 3).decode()
    from azure.core.exceptions import ClientAuthenticationError

    with pytest.raises(ClientAuthenticationError) as info:
        attempt("az://exports/focus/2026-10.parquet", azure_credentials=azure_block(azure, wrong))
    assert azure.auth_failures >= 1
    said = everything_said(info.value, caplog)
    assert wrong not in said and CANARY not in said


def test_az_paths_through_an_azure_container_storage_block(azure):
    from prefect_azure.blob_storage import AzureBlobStorageContainer

    block = AzureBlobStorageContainer(
        container_name="exports", base_folder="focus", credentials=azure_block(azure)
    )
    with local_export("2026-10.parquet", storage_block=block) as path:
        assert path.read_bytes() == PAYLOAD
    assert azure.auth_failures == 0
    with pytest.raises(FileNotFoundError, match="'gone.csv' in the AzureBlobStorageContainer"):
        attempt("gone.csv", storage_block=block)


# ------------------------------------------------------------- blocks -> fsspec options


def test_storage_options_from_aws_blocks(moto_url):
    from prefect_aws import AwsCredentials, MinIOCredentials

    opts = storage_options(
        "s3",
        AwsCredentials(
            aws_access_key_id="AKIA1",
            aws_secret_access_key=CANARY,
            aws_session_token="tok",
            region_name="eu-west-1",
            aws_client_parameters={
                "endpoint_url": moto_url,
                "verify": False,
                "config": {"read_timeout": 5},
            },
        ),
    )
    assert opts["key"] == "AKIA1" and opts["secret"] == CANARY and opts["token"] == "tok"
    assert opts["client_kwargs"] == {
        "region_name": "eu-west-1",
        "endpoint_url": moto_url,
        "verify": False,
    }
    assert opts["config_kwargs"]["retries"] == {"total_max_attempts": 1, "mode": "standard"}
    assert opts["config_kwargs"]["read_timeout"] == 5  # the block's config wins
    minio = storage_options(
        "s3a",
        MinIOCredentials(
            minio_root_user="minio",
            minio_root_password=CANARY,
            aws_client_parameters={"endpoint_url": "http://127.0.0.1:9000"},
        ),
    )
    assert (minio["key"], minio["secret"]) == ("minio", CANARY)
    assert minio["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:9000"
    # no block: the SDK's credential chain, with one attempt per call and bounded waits
    assert storage_options("s3") == {
        "config_kwargs": {
            "retries": {"total_max_attempts": 1, "mode": "standard"},
            "connect_timeout": 10,
            "read_timeout": 60,
        }
    }


def test_storage_options_reach_the_s3_client_and_read_from_moto(moto_url):
    """The options of a block with known values, given to s3fs, make a client that has
    them (region, endpoint, key, timeouts, no retries) and reads the block's bucket."""
    import fsspec
    from prefect_aws import AwsCredentials

    s3 = boto3.client(
        "s3",
        endpoint_url=moto_url,
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key="x",
        region_name="eu-west-1",
    )
    s3.create_bucket(
        Bucket="eu-exports", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    s3.put_object(Bucket="eu-exports", Key="focus/2026-10.csv", Body=b"BilledCost\n1.5\n")
    block = AwsCredentials(
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=CANARY,
        region_name="eu-west-1",
        aws_client_parameters={"endpoint_url": moto_url, "config": {"read_timeout": 7}},
    )
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **storage_options("s3", block))
    assert fs.cat_file("eu-exports/focus/2026-10.csv") == b"BilledCost\n1.5\n"
    client = fs.s3
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == moto_url
    assert client.meta.config.read_timeout == 7 and client.meta.config.connect_timeout == 10
    assert client.meta.config.retries["total_max_attempts"] == 1
    frozen = client._request_signer._credentials
    assert (frozen.access_key, frozen.secret_key) == (MOTO_KEY, CANARY)


def test_storage_options_assume_role_through_the_blocks_session(moto_url, monkeypatch):
    from prefect_aws import AwsCredentials

    # prefect-aws makes its STS client without the block's endpoint: point botocore at moto
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_url)

    creds = AwsCredentials(
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key="x",
        region_name="us-east-1",
        assume_role_arn="arn:aws:iam::123456789012:role/cost-reader",
        aws_client_parameters={"endpoint_url": moto_url},
    )
    opts = storage_options("s3", creds)
    assert opts["key"].startswith("ASIA") and opts["token"]  # moto STS temporary credentials
    assert opts["key"] != MOTO_KEY


def test_storage_options_from_gcp_and_azure_blocks(gcp_key):
    from google.oauth2.service_account import Credentials
    from prefect_azure import AzureBlobStorageCredentials
    from prefect_gcp import GcpCredentials

    gcp = storage_options(
        "gs",
        GcpCredentials(
            service_account_info=service_account_info(gcp_key, "http://127.0.0.1:1/token", "k")
        ),
    )
    assert isinstance(gcp["token"], Credentials) and gcp["project"] == "opsflow-test"
    conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;"
    assert storage_options("az", AzureBlobStorageCredentials(connection_string=conn)) == {
        "connection_string": conn
    }
    spn = storage_options(
        "abfs",
        AzureBlobStorageCredentials(
            account_url="https://acct.blob.core.windows.net",
            client_id="cid",
            tenant_id="tid",
            client_secret=CANARY,
        ),
    )
    assert spn == {
        "account_name": "acct",
        "account_host": "acct.blob.core.windows.net",
        "client_id": "cid",
        "tenant_id": "tid",
        "client_secret": CANARY,
    }
    default = storage_options(
        "az", AzureBlobStorageCredentials(account_url="https://acct.blob.core.windows.net")
    )
    assert default == {
        "account_name": "acct",
        "account_host": "acct.blob.core.windows.net",
        "anon": False,
    }
    with pytest.raises(ValueError, match="azure_credentials.account_url"):
        storage_options(
            "az", AzureBlobStorageCredentials(account_url="http://127.0.0.1:10000/devstore")
        )


def test_storage_options_rejects_mismatched_blocks(moto_url):
    with pytest.raises(TypeError, match="gs:// needs a GcpCredentials block, not AwsCredentials"):
        storage_options("gs", aws_block(moto_url))
    with pytest.raises(ValueError, match="protocol: 'ftp'"):
        storage_options("ftp")
    with pytest.raises(TypeError, match="s3:// needs"):
        attempt("s3://b/k.csv", aws_credentials="not a block")


def test_block_location_for_the_three_storage_blocks(moto_url, gcp_key, azure):
    from prefect_aws.s3 import S3Bucket
    from prefect_azure.blob_storage import AzureBlobStorageContainer
    from prefect_gcp import GcpCredentials
    from prefect_gcp.cloud_storage import GcsBucket

    url, opts = block_location(
        S3Bucket(bucket_name="finops", bucket_folder="/team/", credentials=aws_block(moto_url)),
        "costs",
    )
    assert url == "s3://finops/team/costs" and opts["secret"] == CANARY
    gcs_block = GcsBucket(
        bucket="finops",
        gcp_credentials=GcpCredentials(
            service_account_info=service_account_info(gcp_key, "http://127.0.0.1:1/token", "k")
        ),
    )
    assert block_location(gcs_block, "costs")[0] == "gs://finops/costs"
    az = AzureBlobStorageContainer(container_name="finops", credentials=azure_block(azure))
    url, opts = block_location(az, "costs")
    assert url == "az://finops/costs" and opts == {"connection_string": azure.connection_string}
    with pytest.raises(TypeError, match="block: PosixPath is not an S3Bucket"):
        block_location(Path("/tmp"))
