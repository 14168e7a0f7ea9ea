"""Telemetry sources mapped into one event / metric-series model (``model``): files,
kubernetes, sentry, cloudwatch, grafana, and entity naming (``entities``)."""
