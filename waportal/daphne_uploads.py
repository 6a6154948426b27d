"""Keeps daphne (Twisted underneath) from holding large request bodies in memory more than it must.

- Twisted's `Request.requestReceived` reads a POSTed multipart/form-data body whole and parses it with the
  `email` package to fill `request.args`, which daphne never reads: a 100 MB upload cost ~1 GB there before
  Django (which parses the same body again, streaming files to disk) saw a byte. Twisted's switch for it,
  `parsePOSTFormSubmission`, is turned off for daphne's requests.
- daphne hands the body (which Twisted spooled to a temporary file) to the application in chunks of the
  server's `request_buffer_size`, all of them queued at once. At its 8 KB default, the freed chunks of a
  100 MB body stayed in the process's heap after the request (RSS +100 MB for good, per concurrent upload);
  1 MB chunks are given back to the system once Django has written them to its own temporary file.

Installed from waportal.asgi, which both `manage.py serve` and the `daphne` command load before serving.
"""

from __future__ import annotations

REQUEST_BUFFER_SIZE = 1024 * 1024


def install() -> None:
    try:
        from daphne import http_protocol
    except ImportError:  # not served by daphne
        return
    if getattr(http_protocol.WebRequest, "_waportal_tuned", False):
        return

    class WebRequest(http_protocol.WebRequest):
        _waportal_tuned = True

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._parsePOSTFormSubmission = False
            # The `daphne` command has no option for it; the server is this process's one daphne server.
            if self.server.request_buffer_size < REQUEST_BUFFER_SIZE:
                self.server.request_buffer_size = REQUEST_BUFFER_SIZE

    # HTTPFactory.buildProtocol reads the module's WebRequest for each new connection.
    http_protocol.WebRequest = WebRequest
