"""The preview server: a starlette app on 127.0.0.1, file watching and live reload.

``PreviewServer(state, port=0)`` binds its socket at once (so ``url`` is known before
it serves), renders the issue, watches issue.json, the workspace templates/ and
newsletter.toml, re-renders on every save (in a worker thread) and tells open pages
through Server-Sent Events; the page's script then swaps the frames, keeping their
scroll position. ``run()`` serves until Ctrl-C (or ``stop()``) and returns cleanly.

Routes: ``/`` the page, ``/assets/{name}`` its script and style, ``/api/state`` the
snapshot as JSON, ``/frame`` the email as a recipient sees it (``?dark=1`` in a
simulated dark mode; its hosted images point at ``/media/<name>``, which serves them
from the previewed issue folder's media/), ``/events`` the SSE stream of versions, ``POST
/api/check-links`` the link check.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Collection
from importlib import resources
from typing import Any

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from newsletter.media import MEDIA_DIR, MEDIA_NAME, content_type
from newsletter.preview.checks import check_links
from newsletter.preview.page import frame_document, snapshot_json
from newsletter.preview.state import PreviewState
from newsletter.preview.watch import Watcher
from newsletter.web.listen import BackgroundServer, bind_socket

log = logging.getLogger(__name__)

# An idle SSE stream sends a comment this often, so a closed tab is noticed.
KEEPALIVE_SECONDS = 15.0
# After Ctrl-C, give open requests this long before cutting them off.
GRACEFUL_SHUTDOWN_SECONDS = 3

LOOPBACK_NAMES = ["127.0.0.1", "localhost"]
ASSET_TYPES = {"preview.js": "text/javascript", "preview.css": "text/css"}
NO_STORE = {"Cache-Control": "no-store"}
TOKEN_HEADER = "x-preview-token"


class VersionHub:
    """Tells every open event stream when a new snapshot version exists (event loop only)."""

    def __init__(self) -> None:
        self.version = 0
        self.closing = False
        self._changed = asyncio.Event()

    def publish(self, version: int) -> None:
        """Announce ``version`` to every waiting stream."""
        self.version = version
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        """End every stream (the server is shutting down)."""
        self.closing = True
        self.publish(self.version)

    async def stream(self) -> AsyncIterator[str]:
        """SSE text: the current version at once, then each new one, until ``close()``."""
        yield "retry: 500\n\n"
        sent = -1
        while not self.closing:
            changed = self._changed
            if self.version != sent:
                sent = self.version
                yield f"event: version\ndata: {sent}\n\n"
                continue
            try:
                await asyncio.wait_for(changed.wait(), timeout=KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keepalive\n\n"


class PreviewApp:
    """The starlette app plus its background work: render loop, watchers, event hub."""

    def __init__(
        self,
        state: PreviewState,
        *,
        on_ready: Callable[[], None] | None = None,
        hosts: Collection[str] = (),
    ) -> None:
        self.state = state
        # the link check makes this machine fetch URLs: only the page this run served may
        # ask, proven by a token in it, from this server's own origin and Host
        self.api_token = secrets.token_urlsafe(32)
        self.hosts = frozenset(hosts)
        self.hub = VersionHub()
        self.renders = 0
        self._on_ready = on_ready
        self._dirty: asyncio.Event | None = None
        self._page = _page_environment().get_template("page.html.j2")
        self.starlette = Starlette(
            routes=[
                Route("/", self.page),
                Route("/assets/{name}", self.asset),
                Route("/api/state", self.api_state),
                Route("/api/check-links", self.api_check_links, methods=["POST"]),
                Route("/frame", self.frame),
                Route("/media/{name}", self.media),
                Route("/events", self.events),
            ],
            lifespan=self.lifespan,
            # only loopback names: a web page cannot read the preview through DNS rebinding
            middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES)],
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Render once, start watching and the render loop; on shutdown stop them all."""
        self._dirty = asyncio.Event()
        await self._render()
        watcher = Watcher(self.state, self._dirty)
        await watcher.start()
        render_loop = asyncio.create_task(self._render_loop(self._dirty))
        if self._on_ready is not None:
            self._on_ready()
        try:
            yield
        finally:
            self.hub.close()
            render_loop.cancel()
            await watcher.stop()
            await asyncio.gather(render_loop, return_exceptions=True)

    async def _render(self) -> None:
        snapshot = await asyncio.to_thread(self.state.refresh)
        self.renders += 1
        self.hub.publish(snapshot.version)

    async def _render_loop(self, dirty: asyncio.Event) -> None:
        while True:
            await dirty.wait()
            dirty.clear()
            await self._render()

    async def page(self, request: Request) -> HTMLResponse:
        """The preview page (its script fetches everything else)."""
        issue_name = self.state.issue_dir.resolve().name
        page = self._page.render(issue_name=issue_name, api_token=self.api_token)
        return HTMLResponse(page, headers=NO_STORE)

    async def asset(self, request: Request) -> Response:
        """The page's script or style, from the packaged templates/preview/."""
        name = request.path_params["name"]
        if name not in ASSET_TYPES:
            return Response("not found", status_code=404)
        text = _preview_files().joinpath(name).read_text(encoding="utf-8")
        return Response(text, media_type=ASSET_TYPES[name], headers=NO_STORE)

    async def api_state(self, request: Request) -> JSONResponse:
        """The current snapshot as JSON (see ``page.snapshot_json``)."""
        return JSONResponse(snapshot_json(self.state.snapshot), headers=NO_STORE)

    async def frame(self, request: Request) -> HTMLResponse:
        """The last good HTML part, slots filled; ``?dark=1`` for the dark-mode simulation,
        ``?web=1`` for the web version."""
        dark = request.query_params.get("dark") == "1"
        web = request.query_params.get("web") == "1"
        good = self.state.snapshot.good
        base_url = self.state.workspace.base_url
        document = frame_document(good, dark=dark, web=web, base_url=base_url)
        return HTMLResponse(document, headers=NO_STORE)

    async def media(self, request: Request) -> Response:
        """A hosted image of the previewed issue (its media/ folder), else 404."""
        name = request.path_params["name"]
        path = self.state.issue_dir / MEDIA_DIR / name
        if not MEDIA_NAME.fullmatch(name):
            return Response("not found", status_code=404)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError:
            return Response("not found", status_code=404)
        return Response(data, media_type=content_type(name), headers=NO_STORE)

    async def events(self, request: Request) -> StreamingResponse:
        """Server-Sent Events: ``version`` events, one per refresh."""
        headers = {**NO_STORE, "X-Accel-Buffering": "no"}
        return StreamingResponse(self.hub.stream(), media_type="text/event-stream", headers=headers)

    async def api_check_links(self, request: Request) -> JSONResponse:
        """Check the http(s) links of the render on show -> [{url, ok, status, detail}].

        403 unless the request carries this run's token and comes from this server's own
        origin and Host (another site, or one rebinding its name to 127.0.0.1, may not).
        """
        refusal = self._refusal(request)
        if refusal:
            log.warning("refused a link check: %s", refusal)
            return JSONResponse({"error": refusal}, status_code=403, headers=NO_STORE)
        good = self.state.snapshot.good
        urls = [link.url for link in good.figures.links] if good else []
        results = await check_links(urls)
        return JSONResponse([result.__dict__ for result in results], headers=NO_STORE)

    def _refusal(self, request: Request) -> str | None:
        """Why ``request`` may not use the API, or None when it may."""
        host = request.headers.get("host", "")
        if self.hosts and host not in self.hosts:
            return "not addressed to this server's own host and port"
        origin = request.headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return "posted from another site"
        token = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.api_token.encode()):
            return "without this preview's token"
        return None


def _preview_files() -> Any:
    return resources.files("newsletter").joinpath("templates", "preview")


def _page_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("newsletter", "templates/preview"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


class _Server(uvicorn.Server):
    """uvicorn, but open event streams end as soon as shutdown starts (else it waits on them)."""

    def __init__(self, config: uvicorn.Config, hub: VersionHub) -> None:
        super().__init__(config)
        self._hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._hub.close()
        await super().shutdown(sockets)


class PreviewServer(BackgroundServer):
    """A preview of ``state`` served on ``host``:``port`` (0 = a free port).

    The socket is bound on construction (NewsletterError if the port is taken), so
    ``url`` is final at once. ``ready`` is set once the first render is done and the
    files are watched; ``on_ready`` is called at that moment, in the server's thread.
    """

    thread_name = "preview-server"
    join_seconds = GRACEFUL_SHUTDOWN_SECONDS + 5

    def __init__(
        self,
        state: PreviewState,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(on_ready)
        self._socket = bind_socket(host, port)
        self.url = f"http://{host}:{self._socket.getsockname()[1]}/"
        port = self._socket.getsockname()[1]
        self.app = PreviewApp(
            state,
            on_ready=self._announce,
            hosts={f"{host}:{port}", *(f"{name}:{port}" for name in LOOPBACK_NAMES)},
        )
        config = uvicorn.Config(
            self.app.starlette,
            log_config=None,
            access_log=False,
            lifespan="on",
            loop="asyncio",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server = _Server(config, self.app.hub)

    def run(self) -> None:
        """Serve until Ctrl-C or ``stop()``; returns normally either way."""
        try:
            self._server.run(sockets=[self._socket])
        except KeyboardInterrupt:
            # uvicorn shuts down gracefully on SIGINT, then re-raises it: that is our exit
            log.info("preview stopped")
        finally:
            self._socket.close()
