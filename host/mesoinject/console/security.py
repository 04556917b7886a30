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

COOKIE = "mesoinject_console"
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
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


class Gate:
    def __init__(self, port: int, secret: str | None = None):
        self.secret = secret or secrets.token_urlsafe(32)
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.origins = {f"http://{host}" for host in self.hosts}
        self.sessions: dict[str, str] = {}  # cookie value -> its CSRF token

    def csrf_token(self, request: web.Request) -> str:
        return self.sessions[request.cookies[COOKIE]]

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        refusal = self.refusal(request)
        if refusal:
            return refusal
        if request.path == "/" and "token" in request.query:
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
        if request.path == "/" and "token" in request.query:
            return None  # the login itself
        if request.cookies.get(COOKIE) not in self.sessions:
            return _refuse(403, "not signed in to this console: open the URL (with its token) that "
                                "`mesoinject ui` printed when it started")
        if request.method in SAFE_METHODS:
            return None
        if origin is None:
            return _refuse(403, "a request that changes anything must come from the console's own page (no Origin)")
        if request.content_type != "application/json":
            return _refuse(415, "send JSON (Content-Type: application/json)")
        if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), self.csrf_token(request)):
            return _refuse(403, "missing or wrong CSRF token: reload the console page")
        return None

    def login(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.query["token"], self.secret):
            return _refuse(403, "wrong or old token: each launch of `mesoinject ui` prints a new URL; open that one")
        cookie = secrets.token_urlsafe(32)
        self.sessions[cookie] = secrets.token_urlsafe(32)
        response = web.Response(status=303, headers={"Location": "/"})  # drops the token from the address bar
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", path="/")
        return response


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=HEADERS)
