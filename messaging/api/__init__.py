"""The REST API's routers (one module per group of the contract) and what they share (common, fields)."""
