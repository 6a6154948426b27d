"""Settings of the server the browser tests start: the embedded default on the sandbox, QR codes that rotate fast."""

from waportal.settings import *  # noqa: F401,F403

WA_BACKEND = "sandbox"
# Short enough that the test sees a code replaced by the next one while it watches.
WA_SANDBOX_QR_SECONDS = 4.0
