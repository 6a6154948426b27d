"""Session workers: hold the WhatsApp clients of leased devices (filled in by the gateway work)."""


def run_embedded_sessions():
    return None
