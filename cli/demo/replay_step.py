"""`farm demo`, step 11: a replay on a planted market whose daily cycle flips sign halfway.

The farm is replayed over the market's history with a retrain every 6 days (a 30-day 1h training window,
small models: the step takes a minute or two). The five policies' table shows what retraining is for: the
static model keeps betting on the old cycle after the flip, the retrained policies learn the new one.
The replay stays in the registry: `farm replay list`, and on the dashboard under Replays.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from trainfarm.cli.demo.unattended import farm_config
from trainfarm.cli.output import console, print_table
from trainfarm.cli.processes import WorkerProcess
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import regime_flip_bars
from trainfarm.shared.errors import FarmError
from trainfarm.shared.replay.metrics import POLICIES
from trainfarm.shared.settings import get_settings

SYMBOL, TIMEFRAME = "FLIP_USDT", "1h"
START = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 130
#: The replay's period (days since START) and cadence: 16 retrain points, the flip at day 65.
FIRST, LAST, CADENCE = 35, 128, timedelta(days=6)
CONFIG = """
[timeframes.1h]
training_window = "30d"
[training]
base_rounds = 40
meta_rounds = 80
"""


def run_replay_demo(env: dict[str, str], logs: Path, dashboard: str) -> bool:
    """Step 11; False when the replay failed."""
    from trainfarm.workers.replay_runs import Progress, create_replay, drive
    from trainfarm.workers.replay_tasks import submit_point

    settings = get_settings()
    folder = settings.home / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "replay.toml"
    config_path.write_text(CONFIG)
    bars = folder / f"{SYMBOL}-5m.parquet"
    regime_flip_bars(DAYS * 288, seed=5, flip_at=0.5, start=START).write_parquet(bars)
    open_store().import_file(bars, SYMBOL)
    console.print(
        f"[green]11.[/] replay: {SYMBOL}, a planted daily cycle that flips sign on day {DAYS // 2}; the farm "
        f"retrains it every {CADENCE.days} days as it would have, and five policies score the same bars"
    )
    worker = WorkerProcess("replay", env | {"FARM_CONFIG_FILE": str(config_path)}, logs, concurrency=2)
    ok = True
    with farm_config(config_path):
        try:
            worker.start()
            replay = create_replay(
                SYMBOL,
                TIMEFRAME,
                start=START + timedelta(days=FIRST),
                end=START + timedelta(days=LAST),
                cadence=CADENCE,
            )

            def report(p: Progress) -> None:
                if p.decision is not None and p.decided in (1, p.total // 2, p.total):
                    console.print(f"   {p.decided}/{p.total} points decided ({p.trained} trained)")

            # Every point is in the queue at once; none of its messages can be in flight before it.
            finished = drive(replay.id, submit=submit_point, in_flight=lambda _point: False, progress=report)
        except FarmError as exc:
            console.print(f"[red]   the replay failed: {exc}[/]")
            ok = False
        finally:
            worker.stop()
    if not ok:
        return False
    result = finished.result or {}
    policies = result.get("policies", {})
    keys = ("logloss", "logloss_vs_prior", "sharpe", "max_drawdown", "signals", "promotions")
    print_table(
        f"replay {finished.id}: {SYMBOL} {TIMEFRAME}, {result.get('retrain_points')} retrain points",
        ["policy", *keys],
        [[p, *(_round(policies.get(p, {}).get(k)) for k in keys)] for p in POLICIES],
    )
    plot = settings.artifacts_dir / "replays" / finished.id / "replay.png"
    console.print(f"   the plot: {plot}")
    console.print(f"   the page: {dashboard}/replays/{finished.id}; `farm replay show {finished.id[:8]}`")
    return True


def _round(value: object) -> object:
    return round(value, 3) if isinstance(value, float) else value
