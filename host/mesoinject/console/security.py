"""Who may talk to the console: the person who launched it, from its own page only.

The console can make a device inject, so every request must prove three things:
it reached us by our own name (Host: no DNS rebinding), it comes from our own
page (Origin / Sec-Fetch-Site: no cross-site requests from other tabs), and its
sender holds the session cookie that only the launch secret buys. State-changing
requests also carry the CSRF token of that session, as a header a cross-site form
cannot set, with a JSON body a cross-site form cannot send.
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

COOKIE = "mesoinject_console_{port}"  # cookies ignore ports: one name per console
COOKIE_MAX_AGE_S = 12 * 3600  # a clinic day; a browser restart keeps it, a new launch does not
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD")
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# the treatment report is a stand-alone document with its own inline styles; it runs no script
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
              "base-uri 'none'; form-action 'none'")


class Gate:
    """The launch secret is good for one sign-in: the URL also passes through the terminal, the
    browser's command line and its history. Signing in again needs a new launch."""

    def __init__(self, port: int):
        self.secret: str | None = secrets.token_urlsafe(32)
        self.cookie = COOKIE.format(port=port)
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.origins = {f"http://{host}" for host in self.hosts}
        self.sessions: dict[str, str] = {}  # cookie value -> its CSRF token

    def csrf_token(self, request: web.Request) -> str:
        return self.sessions[request.cookies[self.cookie]]

    def signed_in(self, request: web.Request) -> bool:
        return request.cookies.get(self.cookie) in self.sessions

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        refusal = self.refusal(request)
        if refusal:
            return refusal
        if _is_login(request):
            response = self.login(request)
        else:
            response = await handler(request)
        if not response.prepared:  # a finished event stream sent its headers long ago
            for name, value in HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    def refusal(self, request: web.Request) -> web.Response | None:
        if request.host not in self.hosts:
            return _refuse(421, f"this console answers only as {' or '.join(sorted(self.hosts))}, not "
                                f"{request.host!r}: open the URL that `mesoinject ui` printed")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.origins:
            return _refuse(403, f"requests from another site ({origin}) are refused")
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return _refuse(403, "requests from another site are refused")
        if _is_login(request):
            return None
        if not self.signed_in(request):
            return _refuse(403, "not signed in to this console: open the URL (with its token) that "
                                "`mesoinject ui` printed when it started")
        if request.method in SAFE_METHODS:
            return None
        if origin is None:
            return _refuse(403, "a request that changes anything must come from the console's own page (no Origin)")
        if request.content_type != "application/json":
            return _refuse(415, "send JSON (Content-Type: application/json)")
        if not _same(request.headers.get(CSRF_HEADER, ""), self.csrf_token(request)):
            return _refuse(403, "missing or wrong CSRF token: reload the console page")
        return None

    def login(self, request: web.Request) -> web.Response:
        response = web.Response(status=303, headers={"Location": "/"})  # drops the token from the address bar
        if self.secret and _same(request.query["token"], self.secret):
            self.secret = None  # used
            cookie = secrets.token_urlsafe(32)
            self.sessions[cookie] = secrets.token_urlsafe(32)
            response.set_cookie(self.cookie, cookie, httponly=True, samesite="Strict", path="/",
                                max_age=COOKIE_MAX_AGE_S)
        elif not self.signed_in(request):  # the link clicked again in the browser that used it is fine
            return _refuse(403, "this link was already used or is wrong: the console is open in the browser that "
                                "used it. For another browser, stop `mesoinject ui` and start it again (new link)")
        return response


def _is_login(request: web.Request) -> bool:
    return request.path == "/" and "token" in request.query


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())  # constant time; any text, no TypeError


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=HEADERS)
