"""Secret masking (tasks.common.secrets): what a block's secrets are, and that they are masked."""

from prefect_aws import AwsCredentials, S3Bucket
from prefect_gcp import GcpCredentials

from tasks.common.retry import one_line_reason
from tasks.common.secrets import block_secrets, mask
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
