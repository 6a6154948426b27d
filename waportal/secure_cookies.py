"""Marks every cookie of an answer `Secure` when its request came over HTTPS (directly or through a trusted proxy).

Django's SESSION_COOKIE_SECURE and CSRF_COOKIE_SECURE are fixed for the process, but the embedded default is
reached over plain HTTP on 127.0.0.1 as often as over HTTPS behind a proxy: True there would break signing in
over HTTP, False would send the session cookie in clear should a page ever be loaded over HTTP. Per request,
a browser that came over HTTPS gets cookies it will only send back over HTTPS. Production sets both settings
True anyway (SECURE_SSL_REDIRECT keeps it on HTTPS); this covers every cookie there too (language, messages).
"""


class SecureCookiesOverHttpsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.is_secure():
            for morsel in response.cookies.values():
                morsel["secure"] = True
        return response
