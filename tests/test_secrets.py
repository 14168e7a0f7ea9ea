"""Secret masking (tasks.common.secrets): what a block's secrets are, and that they are masked."""

import pytest
from prefect_aws import AwsCredentials, S3Bucket
from prefect_gcp import GcpCredentials

from tasks.common.retry import one_line_reason
from tasks.common.secrets import block_secrets, is_secret_name, mask
from tests.servers.gcp_catalog import service_account_info


def test_secrets_of_a_block_and_of_the_blocks_nested_in_it():
    creds = AwsCredentials(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="canary-42-key")
    bucket = S3Bucket(bucket_name="finops", credentials=creds)
    assert "canary-42-key" in block_secrets(bucket)
    assert "finops" not in block_secrets(bucket)


def test_service_account_private_key_is_a_secret_but_its_email_is_not(gcp_key):
    info = service_account_info(gcp_key, "https://oauth2.googleapis.com/token", "kid-canary-1")
    found = block_secrets(GcpCredentials(service_account_info=info))
    assert "kid-canary-1" in found and info["private_key"] in found
    assert info["client_email"] not in found


def test_mask_replaces_every_occurrence_but_not_short_values():
    assert mask("a canary-42 b canary-42", ["canary-42"]) == "a *** b ***"
    assert mask("abc", ["abc"]) == "abc"  # too short to mask without hiding ordinary words


def test_failure_reasons_are_masked():
    text = one_line_reason(RuntimeError("denied\nfor canary-42-key"), ["canary-42-key"])
    assert text == "RuntimeError: denied for ***"


def _kubeconfig(users: list[dict]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
        "users": users,
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": users[0]["name"]}}],
        "current-context": "ctx",
    }


def _k8s_block(users: list[dict]):
    from prefect_kubernetes.credentials import KubernetesClusterConfig, KubernetesCredentials

    config = KubernetesClusterConfig(config=_kubeconfig(users), context_name="ctx")
    return KubernetesCredentials(cluster_config=config)


def test_kubeconfig_user_token_password_and_key_data_are_secrets():
    import base64

    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEcanaryKeyBody\n-----END RSA PRIVATE KEY-----"
    key_data = base64.b64encode(pem.encode()).decode()
    cert_data = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIC\n").decode()
    block = _k8s_block(
        [
            {"name": "bot", "user": {"token": "canary-k8s-token-1"}},
            {"name": "admin", "user": {"username": "admin", "password": "canary-pw-2"}},
            {
                "name": "x509",
                "user": {"client-key-data": key_data, "client-certificate-data": cert_data},
            },
        ]
    )
    found = block_secrets(block)
    assert {"canary-k8s-token-1", "canary-pw-2", key_data, pem} <= set(found)
    assert cert_data not in found and "admin" not in found
    assert "https://10.0.0.1:6443" not in found
    reason = one_line_reason(RuntimeError("401: Bearer canary-k8s-token-1 refused"), found)
    assert reason == "RuntimeError: 401: Bearer *** refused"


def test_auth_provider_and_exec_plugin_secrets():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlLWNhbmFyeQ"
    block = _k8s_block(
        [
            {
                "name": "oidc",
                "user": {
                    "auth-provider": {
                        "name": "oidc",
                        "config": {
                            "client-id": "kubernetes-public",
                            "client-secret": "canary-oidc-secret",
                            "id-token": "canary-id-token",
                            "refreshToken": "canary-refresh",
                            "idp-issuer-url": "https://idp.example.com",
                        },
                    }
                },
            },
            {
                "name": "exec",
                "user": {
                    "exec": {
                        "command": "get-token",
                        "args": ["--cluster", "prod", "--token=canary-arg-tok", "--api-key", "k-9"],
                        "env": [
                            {"name": "AWS_PROFILE", "value": "production"},
                            {"name": "AWS_SECRET_ACCESS_KEY", "value": "canary-env-secret"},
                            {"name": "OIDC_BLOB", "value": jwt},
                        ],
                    }
                },
            },
        ]
    )
    found = set(block_secrets(block))
    assert {
        "canary-oidc-secret",
        "canary-id-token",
        "canary-refresh",
        "canary-arg-tok",
        "canary-env-secret",
        jwt,
    } <= found
    assert not found & {"kubernetes-public", "production", "prod", "get-token", "oidc"}
    assert "https://idp.example.com" not in found


def test_passwords_in_any_dict_field_and_urls_with_credentials():
    from blocks.azure import AzureCredentials

    block = AzureCredentials(
        credential_kwargs={
            "proxies": {"https": "http://proxy-user:canary-proxy-pw@proxy:3128"},
            "connection": {"Password": "canary-dict-pw", "host": "db.internal"},
            "secrets": ["canary-list-1", {"any": "canary-list-2"}],
            "token_file": "/var/run/secrets/azure/tokens/azure-identity-token",
        },
    )
    found = set(block_secrets(block))
    assert {"canary-proxy-pw", "canary-dict-pw", "canary-list-1", "canary-list-2"} <= found
    assert not found & {
        "db.internal",
        "proxy-user",
        "/var/run/secrets/azure/tokens/azure-identity-token",
    }


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("token", True),
        ("client-key-data", True),
        ("clientSecret", True),
        ("DB_PASSWORD", True),
        ("private_key_id", True),
        ("storage_access_key", True),
        ("client-certificate-data", False),
        ("certificate-authority-data", False),
        ("token_uri", False),
        ("tokenFile", False),
        ("aws_access_key_id", False),
        ("secret_name", False),
        ("username", False),
    ],
)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret
