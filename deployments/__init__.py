"""Deployment definitions: ``serve.py`` for one machine, ``prefect.yaml`` for work pools."""
