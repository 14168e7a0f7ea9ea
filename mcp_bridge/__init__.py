"""The MCP bridge: registry flows as MCP tools, each call a flow run on a Prefect API."""
