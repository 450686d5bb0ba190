"""The farm dashboard: a read-only, server-rendered web app (FastAPI + Jinja2, no front-end build step).

Pages: the market grid (``/``), the run history (``/runs``), a version page (``/versions/<id>``: every
gate check, the stacker choice, metrics next to the prior and the best base model, the pack's plots), a
history page per market (``/markets/<symbol>/<timeframe>/history``: every version's log-loss and gate
verdict, the champion's moves and its live win rate and Sharpe, as server-drawn SVG charts and tables) and
the bot fleet (``/bots``). Each page's live part is re-rendered by the server as a fragment
(``/fragments/<name>``) that a ten-line script (``static/live.js``) fetches every few seconds, so the pages
follow the farm without a reload. ``/metrics`` is the Prometheus endpoint (:mod:`trainfarm.web.prometheus`).

Every path except ``/healthz`` (which says "ok" and nothing else, for container healthchecks) needs the
operator UIs' basic auth (:mod:`trainfarm.shared.ui_auth`), the same as Flower's. Nothing here writes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.errors import ArtifactError, ConfigError, SymbolError, UnknownMarketError
from trainfarm.shared.registry import Registry, ReplayNotFoundError, VersionNotFoundError
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.ui_auth import UiCredentials, ui_credentials
from trainfarm.web import history, views
from trainfarm.web.history_chart import history_charts
from trainfarm.web.prometheus import FarmCollector

HERE = Path(__file__).parent
#: Seconds between refreshes of a page's live part.
REFRESH_S = 3.0
#: Paths served without credentials (they reveal nothing).
PUBLIC = frozenset({"/healthz"})


def _authorised(header: str | None, creds: UiCredentials) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # compare_digest on both, always: the time taken does not say which one was wrong.
    ok_user = secrets.compare_digest(user.encode(), creds.user.encode())
    ok_password = secrets.compare_digest(password.encode(), creds.password.encode())
    return ok_user and ok_password


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _number(value: object, fmt: str = ".4f") -> str:
    return format(value, fmt) if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _market_history(
    registry: Registry, config: FarmConfig, symbol: str, timeframe: str
) -> history.MarketHistory | Response:
    """The market's history, or the plain-text answer to a URL that names no market: 400 for a malformed
    symbol or timeframe, 404 for a well-formed market the farm does not know."""
    try:
        return history.market_history(registry, config, symbol, timeframe)
    except (SymbolError, ConfigError) as exc:
        return PlainTextResponse(str(exc), status_code=400)
    except UnknownMarketError as exc:
        return PlainTextResponse(str(exc), status_code=404)


def create_app(settings: FarmSettings | None = None) -> FastAPI:
    """The dashboard for the farm of ``settings`` (default: this process's)."""
    settings = settings or get_settings()
    creds = ui_credentials(settings)
    app = FastAPI(title="trainfarm", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["age"] = _age
    templates.env.filters["num"] = _number
    metrics_registry = CollectorRegistry(auto_describe=False)
    metrics_registry.register(FarmCollector())

    @app.middleware("http")
    async def basic_auth(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path in PUBLIC or _authorised(request.headers.get("authorization"), creds):
            return await call_next(request)
        return PlainTextResponse(
            "authentication required",
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="trainfarm"'},
        )

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def registry() -> Registry:
        return Registry.open(settings.database)

    def render(request: Request, name: str, **context: Any) -> HTMLResponse:
        context |= {"now": datetime.now(UTC), "refresh_s": REFRESH_S}
        return templates.TemplateResponse(request, name, context)

    def markets_context() -> dict[str, Any]:
        return {"grid": views.grid(registry(), settings.load_config())}

    def runs_context() -> dict[str, Any]:
        return {"runs": views.runs(registry())}

    def bots_context() -> dict[str, Any]:
        with redis_connection(settings) as client:
            return {"bots": views.bots(registry(), settings.load_config(), client)}

    pages: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
        "markets": ("_markets.html", markets_context),
        "runs": ("_runs.html", runs_context),
        "bots": ("_bots.html", bots_context),
    }

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    def markets_page(request: Request) -> HTMLResponse:
        return render(request, "markets.html", page="markets", **markets_context())

    @app.get("/runs", response_class=HTMLResponse)
    def runs_page(request: Request) -> HTMLResponse:
        return render(request, "runs.html", page="runs", **runs_context())

    @app.get("/bots", response_class=HTMLResponse)
    def bots_page(request: Request) -> HTMLResponse:
        return render(request, "bots.html", page="bots", **bots_context())

    @app.get("/fragments/{name}", response_class=HTMLResponse)
    def fragment(request: Request, name: str) -> Response:
        if name not in pages:
            return PlainTextResponse(f"no fragment {name!r}", status_code=404)
        template, context = pages[name]
        return render(request, template, **context())

    @app.get("/versions/{version_id}", response_class=HTMLResponse)
    def version_page(request: Request, version_id: str) -> Response:
        try:
            page = views.version_page(registry(), version_id)
        except VersionNotFoundError:
            return PlainTextResponse(f"no version {version_id!r}", status_code=404)
        return render(request, "version.html", page="runs", v=page)

    @app.get("/versions/{version_id}/{plot:path}")
    def version_plot(version_id: str, plot: str) -> Response:
        try:
            path = views.plot_file(registry(), version_id, plot)
        except (VersionNotFoundError, ArtifactError) as exc:
            return PlainTextResponse(str(exc), status_code=404)
        return FileResponse(path, media_type="image/png")

    @app.get("/markets/{symbol}/{timeframe}/history", response_class=HTMLResponse)
    def history_page(request: Request, symbol: str, timeframe: str) -> Response:
        # The config is read before, not inside, the lookup: a broken farm.toml is no bad URL.
        found = _market_history(registry(), settings.load_config(), symbol, timeframe)
        if isinstance(found, Response):
            return found
        charts = history_charts(found, datetime.now(UTC))
        return render(request, "history.html", page="markets", h=found, charts=charts)

    @app.get("/replays", response_class=HTMLResponse)
    def replays_page(request: Request) -> HTMLResponse:
        return render(request, "replays.html", page="replays", replays=views.replays(registry()))

    @app.get("/replays/{replay_id}", response_class=HTMLResponse)
    def replay_page(request: Request, replay_id: str) -> Response:
        try:
            page = views.replay_page(registry(), replay_id, settings.artifacts_dir)
        except ReplayNotFoundError:
            return PlainTextResponse(f"no replay {replay_id!r}", status_code=404)
        return render(request, "replay.html", page="replays", r=page, policies=views.REPLAY_POLICIES)

    @app.get("/replays/{replay_id}/plot.png")
    def replay_plot(replay_id: str) -> Response:
        try:
            path = views.replay_plot_file(registry().replays.get(replay_id), settings.artifacts_dir)
        except ReplayNotFoundError as exc:
            return PlainTextResponse(str(exc), status_code=404)
        if not path.is_file():
            return PlainTextResponse("the replay has no plot yet", status_code=404)
        return FileResponse(path, media_type="image/png")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    return app


__all__ = ["PUBLIC", "REFRESH_S", "create_app"]
