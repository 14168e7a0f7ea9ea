"""Prefect Block classes opsflow adds (registered with ``prefect block register -m blocks``).

AWS, GCP, Azure and Kubernetes credentials come from the Prefect integrations
(``prefect_aws.AwsCredentials``, ``prefect_gcp.GcpCredentials``, ...); the blocks for
systems those integrations do not cover (Sentry, Grafana, Datadog, W&B) live here as
the capabilities that use them land.
"""
