"""daphne, as waportal.asgi installs it: no second in-memory parse of multipart bodies, body chunks of 1 MB."""

from types import SimpleNamespace

from daphne import http_protocol
from twisted.internet.testing import StringTransport

import waportal.asgi  # noqa: F401 - installs waportal.daphne_uploads
from waportal import daphne_uploads


def test_daphne_requests_do_not_parse_form_bodies_and_hand_the_body_on_in_large_chunks():
    server = SimpleNamespace(request_buffer_size=8192, protocol_connected=lambda request: None)
    factory = http_protocol.HTTPFactory(server)
    protocol = factory.buildProtocol(("127.0.0.1", 1234))
    protocol.makeConnection(StringTransport())
    request = protocol.requestFactory(protocol._channel, False)
    # Twisted would otherwise read a multipart body whole and parse it with `email` (daphne never uses it).
    assert request._parsePOSTFormSubmission is False
    assert server.request_buffer_size == daphne_uploads.REQUEST_BUFFER_SIZE
