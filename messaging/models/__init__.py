"""Messaging models: one module per concern, all registered under the `messaging` app."""

from messaging.models.chat import Chat, Contact, Label, Message, MessageStatus, SentMessageId  # noqa: F401
from messaging.models.device import Device, DeviceLease, DeviceStatus  # noqa: F401
from messaging.models.history import *  # noqa: F401,F403
from messaging.models.idempotency import IdempotencyKey  # noqa: F401
from messaging.models.lid import LidMapping  # noqa: F401
from messaging.models.sandbox import *  # noqa: F401,F403
from messaging.models.tally import MessageTally  # noqa: F401
from messaging.models.webhook import *  # noqa: F401,F403
