"""Keeps daphne (Twisted underneath) from parsing every multipart body a second time, in memory.

Twisted's `Request.requestReceived` reads a POSTed multipart/form-data body whole and parses it with the
`email` package to fill `request.args`, which daphne never reads: a 100 MB upload cost ~1 GB there before
Django (which parses the same body again, streaming files to disk) saw a byte. Twisted has a switch for it,
`parsePOSTFormSubmission`, that daphne leaves on; this turns it off for daphne's requests. Installed from
waportal.asgi, which both `manage.py serve` and the `daphne` command load before serving.
"""

from __future__ import annotations


def install() -> None:
    try:
        from daphne import http_protocol
    except ImportError:  # not served by daphne
        return
    if getattr(http_protocol.WebRequest, "_waportal_no_form_parsing", False):
        return

    class WebRequest(http_protocol.WebRequest):
        _waportal_no_form_parsing = True

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._parsePOSTFormSubmission = False

    # HTTPFactory.buildProtocol reads the module's WebRequest for each new connection.
    http_protocol.WebRequest = WebRequest
