"""waportal: a multi-tenant WhatsApp dashboard and REST API."""
