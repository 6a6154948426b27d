"""State of the simulated WhatsApp network (the sandbox backend), shared by every worker process."""
