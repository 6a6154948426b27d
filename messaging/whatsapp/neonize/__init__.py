"""Parts of the real WhatsApp backend (neonize_backend) that need no neonize: what they read is bytes."""
