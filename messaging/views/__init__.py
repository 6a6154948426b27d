"""Dashboard pages of messaging: devices, profile, compose, inbox and the sandbox's simulated phone."""
