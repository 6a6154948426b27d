"""Signals accounts sends for others to act on (messaging.live ends the live sockets they concern)."""

from django.dispatch import Signal

# A user's password was changed or reset (kwargs: user). Their other sessions are no longer valid.
password_changed = Signal()
