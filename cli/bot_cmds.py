"""`farm bot SYM TF`: a reference bot built on the client library, as a bot author would write one."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated

import polars as pl
import typer

from trainfarm.cli.output import console
from trainfarm.shared.connections import redis_url
from trainfarm.shared.data.store import BarStore, open_store
from trainfarm.shared.errors import DataError, DataNotFoundError
from trainfarm.shared.settings import get_settings
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe
from trainfarm_client.errors import ClientError
from trainfarm_client.featurespec import Requirement, SeriesKey, bar_duration
from trainfarm_client.live import Champion, LiveModel, Score


def _emit(as_json: bool, event: dict[str, object], text: str) -> None:
    if as_json:
        print(json.dumps(event), flush=True)
    else:
        console.print(text)


def _seconds_since(promoted_at: str) -> float | None:
    """Seconds from ``promoted_at`` (ISO 8601; naive counts as UTC) to now, or None when unreadable."""
    try:
        at = datetime.fromisoformat(promoted_at)
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (datetime.now(UTC) - at).total_seconds()


def bot(
    symbol: Annotated[str, typer.Argument(help="market, e.g. BTC/USDT")],
    timeframe: Annotated[str, typer.Argument(help="5m, 1h, 12h or 24h")],
    duration: Annotated[
        float, typer.Option("--duration", help="stop after this many seconds (0 = run forever)")
    ] = 0,
    interval: Annotated[
        float, typer.Option("--interval", help="seconds between scoring the newest bars")
    ] = 5.0,
    recheck: Annotated[float, typer.Option("--recheck", help="seconds between champion-key re-checks")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object per line")] = False,
    bot_id: Annotated[
        str | None, typer.Option("--bot-id", help="name in the heartbeat (default: host-pid-random)")
    ] = None,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="score the store's newest bar as if it had just closed (historical data, demos); "
            "without it the bar must have closed within one interval of now, or there is no signal",
        ),
    ] = False,
    walk_from: Annotated[
        str | None,
        typer.Option(
            "--walk-from",
            help="walk the store's bars from this time (ISO 8601, UTC) on, one bar per --interval, each "
            "scored as if it had just closed (shadow tests, demos); stops after the newest bar",
        ),
    ] = None,
) -> None:
    """Serve the champion: print every reload (and how long after its promotion), score the newest bar."""
    sym, tf = canonical_symbol(symbol), parse_timeframe(timeframe)
    store = open_store()
    store.load(sym, tf)  # fail now, with the store's message, when the market's bars were never imported
    walk = _Walk(store, sym, tf, _utc(walk_from)) if walk_from else None
    settings = get_settings()
    token = settings.pack_token.get_secret_value() if settings.pack_token else None
    # Packs named by an http(s):// URI (a farm on another machine) are fetched into the home's cache.
    cache = settings.home / "pack-cache"
    model = LiveModel(
        sym,
        tf.value,
        redis_url=redis_url(),
        bot_id=bot_id,
        recheck_interval=recheck,
        cache_dir=cache,
        pack_token=token,
    )

    def on_reload(old: Champion | None, new: Champion) -> None:
        lag = _seconds_since(new.promoted_at)
        previous = old.version if old else None
        _emit(
            as_json,
            {"event": "reload", "version": new.version, "previous": previous, "seconds_since_promotion": lag},
            f"[green]reload[/] {previous or '-'} -> [bold]{new.version}[/] "
            f"({'?' if lag is None else f'{lag:.2f}'}s after its promotion)",
        )

    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()  # leave the loop and close: the heartbeat hash goes at once, not at its TTL

    previous_handler = signal.signal(signal.SIGTERM, on_term)
    try:
        model.on_reload(on_reload)
        model.start()
        _emit(
            as_json,
            {"event": "started", "bot_id": model.bot_id, "version": model.version},
            f"bot {model.bot_id} watching {sym} {tf.value}; "
            f"serving {model.version or 'nothing yet (no champion)'}",
        )
        started = time.monotonic()
        reported_error: str | None = None
        while not stop.is_set():
            problem: str | None = model.last_error
            if model.version is not None:
                try:
                    if walk is not None and walk.done:
                        _emit(as_json, {"event": "walk_end"}, "walked to the newest bar")
                        break
                    series, now = _series(model, store, walk, tf, replay=replay)
                    scored = model.score(series, now=now)  # from one loaded version, newest closed bar only
                except (ClientError, DataError, DataNotFoundError) as exc:  # the next bars or version may do
                    problem = f"cannot score: {exc}"
                else:
                    _emit_score(as_json, scored)
            if problem and problem != reported_error:
                _emit(as_json, {"event": "error", "error": problem}, f"[yellow]{problem}[/]")
            reported_error = problem
            if duration and time.monotonic() - started >= duration:
                break
            stop.wait(interval)
    except KeyboardInterrupt:
        pass
    finally:
        model.close()
        signal.signal(signal.SIGTERM, previous_handler)
        _emit(as_json, {"event": "stopped", "version": model.version}, "bot stopped")


def register(app: typer.Typer) -> None:
    """Add `farm bot` to the main app."""
    app.command("bot")(bot)


def _emit_score(as_json: bool, scored: Score) -> None:
    """One score event, or a no-signal event naming why the newest closed bar was not scored."""
    bar = scored.bar.isoformat() if scored.bar is not None else None
    if scored.probabilities is None or scored.decision is None:
        _emit(
            as_json,
            {"event": "no_signal", "version": scored.version, "bar": bar, "reason": scored.reason},
            f"v{scored.version}: no signal: {scored.reason}",
        )
        return
    probs = scored.probabilities
    event: dict[str, object] = {
        "event": "score",
        "version": scored.version,
        "bar": bar,
        "p_down": float(probs[0]),
        "p_neutral": float(probs[1]),
        "p_up": float(probs[2]),
        "signal": scored.decision.signal,
        "p_star": scored.decision.p_star,
    }
    text = (
        f"{bar} v{scored.version}: down {probs[0]:.3f} neutral {probs[1]:.3f} up {probs[2]:.3f} "
        f"-> {scored.decision.signal or 'no signal'}"
    )
    shadow = scored.challenger
    if shadow is not None:
        event["challenger"] = {
            "version": shadow.version,
            "probabilities": None if shadow.probabilities is None else shadow.probabilities.tolist(),
            "signal": shadow.decision.signal if shadow.decision else None,
            "reason": shadow.reason,
        }
        text += (
            f" (challenger v{shadow.version}: {shadow.decision.signal if shadow.decision else shadow.reason})"
        )
    _emit(as_json, event, text)


def _series(
    model: LiveModel, store: BarStore, walk: _Walk | None, tf: Timeframe, *, replay: bool
) -> tuple[dict[SeriesKey, pl.DataFrame], datetime]:
    """The bars of every series the served pack reads (read again each time), and the scoring moment."""
    if walk is not None:
        return walk.step(model.requirements)
    series = {
        need.key: store.load(need.symbol, Timeframe(need.timeframe)).tail(need.bars)
        for need in model.requirements
    }
    bars = series[(model.symbol, tf.value)]
    # In replay, "now" is the moment the store's newest bar closed.
    now = bars["date"][-1] + tf.duration if replay and bars.height else datetime.now(UTC)
    return series, now


def _utc(text: str) -> datetime:
    """An ISO 8601 time as UTC (naive counts as UTC); ``typer.BadParameter`` when unreadable."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"--walk-from {text!r} is not an ISO 8601 time") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class _Walk:
    """The store's bars walked one at a time: each step feeds the bars closed when the next one closed."""

    def __init__(self, store: BarStore, symbol: str, timeframe: Timeframe, start: datetime) -> None:
        self._store = store
        self._frames: dict[SeriesKey, pl.DataFrame] = {}
        self._own = (symbol, timeframe.value)
        self._timeframe = timeframe
        own = self._frame(symbol, timeframe.value)
        self._at = int(own["date"].search_sorted(start, side="left"))

    def _frame(self, symbol: str, timeframe: str) -> pl.DataFrame:
        key = (symbol, timeframe)
        if key not in self._frames:
            self._frames[key] = self._store.load(symbol, Timeframe(timeframe))
        return self._frames[key]

    @property
    def done(self) -> bool:
        """True once the newest bar was fed."""
        return self._at >= self._frames[self._own].height

    def step(self, needs: Sequence[Requirement]) -> tuple[dict[SeriesKey, pl.DataFrame], datetime]:
        """The series ``needs`` names as a bot would hold them when the next bar closed, and that moment."""
        own = self._frames[self._own]
        now = own["date"][self._at] + self._timeframe.duration
        self._at += 1
        series = {}
        for need in needs:
            frame = self._frame(need.symbol, need.timeframe)
            closed = int(frame["date"].search_sorted(now - bar_duration(need.timeframe), side="right"))
            series[need.key] = frame.slice(max(0, closed - need.bars), min(closed, need.bars))
        return series, now
