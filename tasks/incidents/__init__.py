"""Incident detection: masking, template mining, embeddings, clustering, anomaly detectors,
correlation, root cause, remediation rules, Kubernetes actions, the pipeline and its evaluation."""
