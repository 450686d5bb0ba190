"""A fleet of bots in one process, for the load test: ``python -m tests.reliability.bot_fleet ...``.

Each bot is its own :class:`~trainfarm_client.live.LiveModel` (its own Redis connections, subscription and
watcher thread). Every reload is appended to ``out`` as ``<bot id> <version>``; the fleet stops when
``stop`` exists (or after ``MAX_LIFE_S``, so a test that died never leaves it behind for long).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from trainfarm_client.live import Champion, LiveModel, ReloadCallback

MAX_LIFE_S = 900.0


def main(redis_url: str, symbol: str, timeframe: str, count: int, prefix: str, out: Path, stop: Path) -> None:
    lock = threading.Lock()
    sink = out.open("a", buffering=1)

    def recorder(bot_id: str) -> ReloadCallback:
        def record(_old: Champion | None, new: Champion) -> None:
            with lock:
                sink.write(f"{bot_id} {new.version}\n")

        return record

    bots = []
    for i in range(count):
        bot = LiveModel(
            symbol, timeframe, redis_url=redis_url, bot_id=f"{prefix}-{i}", recheck_interval=2.0,
            heartbeat_interval=30.0,
        )  # fmt: skip
        bot.on_reload(recorder(bot.bot_id))
        bots.append(bot.start())
    with lock:
        sink.write(f"{prefix} started\n")
    deadline = time.monotonic() + MAX_LIFE_S
    while not stop.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    for bot in bots:
        bot.close()
    sink.close()


if __name__ == "__main__":
    url, sym, tf, n, name, out_file, stop_file = sys.argv[1:8]
    main(url, sym, tf, int(n), name, Path(out_file), Path(stop_file))
