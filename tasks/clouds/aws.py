"""AWS clients from a prefect-aws ``AwsCredentials`` block, for every AWS call opsflow makes.

The block supplies the session (keys, profile or assumed role) and its
``aws_client_parameters`` (endpoint override, botocore config). SDK retries are off:
retries happen once, at the task level (``tasks.common.retry``), which classifies AWS
errors (throttling, timeouts and 5xx are retried; auth and validation are not).

``get_metric_data`` is the one ``cloudwatch:GetMetricData`` reader (the 500-query
limit per call and ``NextToken`` pages), for the inventory's utilisation and the
CloudWatch telemetry source.

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

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from botocore.config import Config
from prefect_aws import AwsCredentials

CONNECT_TIMEOUT = 10  # seconds
READ_TIMEOUT = 60  # seconds
METRIC_DATA_QUERIES_PER_CALL = 500  # GetMetricData's limit


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


def get_metric_data(
    cloudwatch_client: Any,
    queries: Sequence[Mapping[str, Any]],
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    """``cloudwatch:GetMetricData`` for any number of queries, oldest samples first.

    The queries go in batches of ``METRIC_DATA_QUERIES_PER_CALL`` (500, the API's
    limit), each read to its last page (``NextToken``) with ``ScanBy=TimestampAscending``.

    Args:
        cloudwatch_client: a boto3 ``cloudwatch`` client (``aws_client(..., "cloudwatch", ...)``).
        queries: ``MetricDataQueries`` items, each with a unique ``Id``.
        start: ``StartTime`` of every call.
        end: ``EndTime`` of every call.

    Returns:
        The ``MetricDataResults`` items of every page of every batch, in order; one
        query's samples can span several items (one per page), matched by ``Id``.

    Example:
        ```python
        from datetime import UTC, datetime, timedelta

        from prefect import flow
        from prefect_aws import AwsCredentials

        from tasks.clouds.aws import aws_client, get_metric_data


        @flow
        def lambda_errors() -> float:
            cloudwatch = aws_client(AwsCredentials.load("BLOCK_NAME"), "cloudwatch", "us-east-1")
            query = {
                "Id": "errors",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Errors",
                        "Dimensions": [{"Name": "FunctionName", "Value": "checkout"}],
                    },
                    "Period": 300,
                    "Stat": "Sum",
                },
            }
            end = datetime.now(UTC)
            results = get_metric_data(cloudwatch, [query], end - timedelta(hours=1), end)
            return sum(v for r in results for v in r.get("Values") or [])
        ```
    """
    batch_size = METRIC_DATA_QUERIES_PER_CALL
    results: list[dict[str, Any]] = []
    for offset in range(0, len(queries), batch_size):
        pages = cloudwatch_client.get_paginator("get_metric_data").paginate(
            MetricDataQueries=list(queries[offset : offset + batch_size]),
            StartTime=start,
            EndTime=end,
            ScanBy="TimestampAscending",
        )
        for page in pages:
            results.extend(page.get("MetricDataResults") or [])
    return results
