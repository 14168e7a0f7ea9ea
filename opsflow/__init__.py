"""opsflow: cloud operations as Prefect flows, with an MCP bridge for agents."""

__version__ = "0.1.0"
