"""``newsletter serve``: the HTTP endpoints (unsubscribe, subscribe, confirm) and the
scheduler, in one long-running process (or ``--workers N`` of them, ``web.workers``).

``create_app(ws, store=None) -> Starlette`` is the ASGI app (see ``web.app`` for the
routes and the rules every answer keeps); ``ServeServer`` runs it under uvicorn with the
scheduler beside it; ``run_server`` is what the CLI calls.
"""

from newsletter.web.app import WebApp, create_app

__all__ = ["WebApp", "create_app"]
