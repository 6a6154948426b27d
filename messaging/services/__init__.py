"""The write path of messaging: plain functions, the tenant passed explicitly, each in a transaction."""
