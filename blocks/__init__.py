"""Prefect Block classes opsflow adds (registered with ``prefect block register -m blocks``).

AWS, GCP and Kubernetes credentials come from the Prefect integrations
(``prefect_aws.AwsCredentials``, ``prefect_gcp.GcpCredentials``, ...). prefect-azure has
no block for the Azure Resource Manager APIs, so ``AzureCredentials`` is here; blocks for
systems no integration covers (Sentry, Grafana, Datadog, W&B) join it as the
capabilities that use them land.
"""

from blocks.azure import AzureCredentials
from blocks.grafana import GrafanaCredentials
from blocks.sentry import SentryCredentials

__all__ = ["AzureCredentials", "GrafanaCredentials", "SentryCredentials"]
