"""Refuses dashboard input the database could not store (a NUL character, a lone surrogate): one check for
every form and every view that reads request.GET or request.POST, with a 400 naming the field.

Django decodes form and query data with replacement, so a surrogate cannot arrive that way today; a NUL can
(`%00`), and PostgreSQL refuses it mid-request. The REST API is left to its own parser (ApiParser in
messaging.api.common), which answers in the API's envelope.
"""

from __future__ import annotations

from django.http import HttpResponseBadRequest
from django.utils.translation import gettext as _

from messaging.services import text


class StorableTextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if match is not None and "api" in match.namespaces:
            return None
        for data in (request.GET, request.POST) if request.method == "POST" else (request.GET,):
            for name, values in data.lists():
                if text.problem_at({name: values}) is not None:
                    return HttpResponseBadRequest(
                        _(
                            "%(field)s: this text holds a character that cannot be stored (NUL or a lone surrogate)."
                        )
                        % {"field": name},
                        content_type="text/plain; charset=utf-8",
                    )
        return None
