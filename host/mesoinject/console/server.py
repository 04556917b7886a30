"""HTTP front of the console: the page, a JSON API, and a Server-Sent Events stream.

aiohttp runs on its own thread and event loop; every device or store action is
handed to the Console's worker (see controller.py), so the server holds no state
of its own beyond the sign-in sessions (security.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import pathlib
import socket
import threading

from aiohttp import web
from aiohttp_sse import sse_response

from ..client import DeviceRefused, NotPaired
from ..exports import NothingToExport
from ..link import LinkError
from .. import zonemap
from ..clinic import ClinicConfigError
from ..program import ProgramError
from ..records import RecordStoreError
from ..session import DeviceInFault, PrimingStopped
from .controller import ActionRefused, Console
from .security import REPORT_CSP, Gate

STATIC = pathlib.Path(__file__).parent / "static"
ZONE_MAP = zonemap.svg(element_id="zone-svg")  # inline in the page: no asset to fetch, styled by console.css
DOWNLOADS = {"csv": ("csv", "text/csv"), "json": ("json", "application/json"),
             "fhir.json": ("fhir", "application/fhir+json")}
REFUSALS = (ActionRefused, DeviceRefused, DeviceInFault, NotPaired, PrimingStopped, RecordStoreError,
            ClinicConfigError)


class ConsoleServer:
    def __init__(self, console: Console, *, port: int = 0):
        self.console = console
        self._sock = socket.create_server(("127.0.0.1", port))  # loopback only
        self.port = self._sock.getsockname()[1]
        self.gate = Gate(self.port)
        self.origin = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.origin}/?token={self.gate.secret}"  # the one sign-in
        self._streams: set[asyncio.Queue] = set()
        # PAUSE and ABORT never wait for a thread that waits on the worker (the default pool's)
        self._stops = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="mesoinject-stop")
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="mesoinject-ui", daemon=True)

    def start(self) -> ConsoleServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        self.console.listeners.append(self._on_snapshot)
        return self

    def stop(self) -> None:
        self.console.listeners.remove(self._on_snapshot)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._stops.shutdown()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.app(), shutdown_timeout=1)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.gate.middleware, _errors])
        r = app.router
        r.add_get("/", self.page)
        r.add_static("/static", STATIC)
        r.add_get("/favicon.ico", _no_content)
        r.add_get("/api/state", self.state)
        r.add_get("/api/events", self.events)
        r.add_get("/api/sessions", self.sessions)
        r.add_get("/api/history", self.history)  # ?patient=REF
        r.add_get("/sessions/{id:\\d+}/report", self.report)
        r.add_get("/sessions/{id:\\d+}/export.{fmt}", self.download)
        c = self.console
        r.add_post("/api/program/check", self._check)  # touches neither device nor store
        r.add_post("/api/session/start", self._on_worker(c.start_session, body=True))
        r.add_post("/api/session/prime", self._on_worker(c.prime))
        r.add_post("/api/session/arm", self._on_worker(c.arm))
        r.add_post("/api/session/resume", self._on_worker(c.resume))
        r.add_post("/api/session/acknowledge", self._on_worker(c.acknowledge))
        r.add_post("/api/session/note", self._on_worker(c.note, body=True))
        r.add_post("/api/session/new", self._on_worker(c.new_session))
        r.add_post("/api/device/clear-fault", self._on_worker(c.clear_fault))
        r.add_post("/api/session/give-remaining", self._on_worker(c.give_remaining))
        r.add_post("/api/session/next-step", self._on_worker(c.next_step))
        r.add_post("/api/session/end-plan", self._on_worker(c.end_plan))
        r.add_post("/api/session/mark", self._on_worker(c.mark, body=True))
        r.add_post("/api/session/pause", self._at_once(c.pause))  # stopping never queues behind a poll
        r.add_post("/api/session/abort", self._at_once(c.abort))
        return app

    # ---- handlers --------------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8").replace("{{zone_map}}", ZONE_MAP)
        return web.Response(text=html.replace("{{csrf_token}}", self.gate.csrf_token(request)),
                            content_type="text/html")

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(self.console.last)

    async def events(self, request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        self._streams.add(queue)
        stream = None
        try:
            async with sse_response(request) as stream:
                await stream.send(json.dumps(self.console.last), event="state")
                while stream.is_connected():
                    await stream.send(await queue.get(), event="state")
        except ConnectionResetError:
            pass  # the page went away; EventSource reconnects if it comes back
        finally:
            self._streams.discard(queue)
        return stream if stream is not None else web.Response(status=204)

    async def sessions(self, request: web.Request) -> web.Response:
        return web.json_response(await self._read(self.console.sessions))

    async def history(self, request: web.Request) -> web.Response:
        return web.json_response(await self._read(self.console.history, request.query.get("patient", "")))

    async def report(self, request: web.Request) -> web.Response:
        lang = request.query.get("lang")
        if lang not in (None, "en", "fr"):
            raise web.HTTPBadRequest(text=f"no report language {lang!r}: en or fr")
        html = await self._read(self.console.export, "html", int(request.match_info["id"]), lang)
        return web.Response(text=html, content_type="text/html", headers={"Content-Security-Policy": REPORT_CSP})

    async def download(self, request: web.Request) -> web.Response:
        session_id, suffix = int(request.match_info["id"]), request.match_info["fmt"]
        if suffix not in DOWNLOADS:
            raise web.HTTPNotFound(text=f"no export .{suffix}; there are {', '.join(DOWNLOADS)}")
        fmt, mime = DOWNLOADS[suffix]
        text = await self._read(self.console.export, fmt, session_id)
        name = f"mesoinject-session-{session_id}.{suffix}"
        return web.Response(text=text, content_type=mime,
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def _check(self, request: web.Request) -> web.Response:
        form = await _json_body(request)
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, self.console.check, form)
        except ProgramError as e:  # an answer to "is this right?", not a refused action
            result = {"ok": False, "field": e.field, "error": str(e)}
        return web.json_response(result)

    def _on_worker(self, action, *, body: bool = False):
        async def handler(request: web.Request) -> web.Response:
            form = await _json_body(request)
            result = await self._call(action, *((form,) if body else ()))
            return web.json_response(result if result is not None else self.console.last)
        return handler

    def _at_once(self, action):
        async def handler(request: web.Request) -> web.Response:
            await asyncio.get_running_loop().run_in_executor(self._stops, action)
            return web.json_response({"ok": True})
        return handler

    async def _call(self, action, *args):
        """On the console's worker, in order with everything that touches the device."""
        return await asyncio.get_running_loop().run_in_executor(None, self.console.call, action, *args)

    async def _read(self, action, *args):
        """Reads of the store: on a pool thread with their own connection, never holding up the worker."""
        return await asyncio.get_running_loop().run_in_executor(None, action, *args)

    def _on_snapshot(self, snapshot: dict) -> None:  # on the console's worker thread
        self._loop.call_soon_threadsafe(self._fan_out, json.dumps(snapshot))

    def _fan_out(self, data: str) -> None:
        for queue in self._streams:  # each snapshot is whole: a slow page needs only the latest
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(data)


async def _json_body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deeply, a number of 5000 digits
        raise web.HTTPBadRequest(text="the body is not JSON the page sends") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


@web.middleware
async def _errors(request: web.Request, handler):
    """A refused action is an answer, not a crash: the status says which kind, the text what to do."""
    try:
        return await handler(request)
    except ProgramError as e:
        return web.json_response({"error": str(e), "field": e.field}, status=422)
    except NothingToExport as e:
        return web.json_response({"error": str(e)}, status=404)
    except REFUSALS as e:
        return web.json_response({"error": str(e)}, status=409)
    except LinkError as e:
        return web.json_response({"error": f"the device did not answer: {e}"}, status=503)
    except web.HTTPException as e:  # as JSON, and through the gate's headers like every answer
        return web.json_response({"error": e.text}, status=e.status)


async def _no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)
