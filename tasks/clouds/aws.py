"""AWS clients from a prefect-aws ``AwsCredentials`` block, for every AWS call opsflow makes.

The block supplies the session (keys, profile or assumed role) and its
``aws_client_parameters`` (endpoint override, botocore config). SDK retries are off:
retries happen once, at the task level (``tasks.common.retry``), which classifies AWS
errors (throttling, timeouts and 5xx are retried; auth and validation are not).

Example:
    ```python
    from prefect import flow
    from prefect_aws import AwsCredentials

    from tasks.clouds.aws import aws_client


    @flow
    def whoami() -> str:
        sts = aws_client(AwsCredentials(region_name="us-east-1"), "sts", "us-east-1")
        return sts.get_caller_identity()["Account"]
    ```
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from prefect_aws import AwsCredentials

CONNECT_TIMEOUT = 10  # seconds
READ_TIMEOUT = 60  # seconds


def aws_client(
    aws_credentials: AwsCredentials, service: str, region: str, *, session: Any = None
) -> Any:
    """A boto3 client for ``service`` in ``region``, with SDK retries off.

    Args:
        aws_credentials: the prefect-aws block; its botocore config, if any, wins over
            the defaults here, and its endpoint override (``aws_client_parameters``) applies.
        service: boto3 service name, e.g. ``"ec2"``, ``"ce"``, ``"logs"``.
        region: region name, e.g. ``"us-east-1"``.
        session: a session from ``aws_credentials.get_boto3_session()`` to reuse (one
            assume-role call for several clients); a new one when omitted.

    Returns:
        A boto3 client.
    """
    params = aws_credentials.aws_client_parameters.get_params_override()
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )
    if params.get("config") is not None:
        config = config.merge(params.pop("config"))
    session = session or aws_credentials.get_boto3_session()
    return session.client(service, region_name=region, config=config, **params)
