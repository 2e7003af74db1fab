"""Agent tools: an MCP server (`worldpolicy mcp`), a Strands `@tool`, and world-model pipeline discovery.

`Toolbox` holds the operations; `mcp_server` and `strands_tool` only adapt them. Needs the `agents` extra (MCP) or
the `strands` extra; importing this package does not import either.
"""

from .toolbox import Toolbox, ToolboxConfig, ToolInputError, error_payload

__all__ = ["ToolInputError", "Toolbox", "ToolboxConfig", "error_payload"]
