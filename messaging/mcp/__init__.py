"""The Model Context Protocol server at /mcp: WhatsApp as tools for AI agents, behind an organization's API key."""
