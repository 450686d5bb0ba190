"""One bot for the promotion benchmark: ``python -m bench.bot_process URL SYMBOL TF OUT STOP [CACHE TOKEN]``.

A :class:`~trainfarm_client.live.LiveModel` (its own connections, subscription and watcher thread) that
appends ``<bot id> <version> <epoch seconds>`` to ``OUT`` each time it starts serving a version (the
reload callback runs right after the swap), and ``<bot id> started`` once it is up. It stops when ``STOP``
exists, or after MAX_LIFE_S. With ``CACHE`` (and optionally ``TOKEN``) it fetches ``http://`` packs from
the pack server into that folder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from trainfarm_client.live import Champion, LiveModel

MAX_LIFE_S = 1800.0


def main(argv: list[str]) -> None:
    url, symbol, timeframe, out_file, stop_file = argv[:5]
    cache = Path(argv[5]) if len(argv) > 5 else None
    token = argv[6] if len(argv) > 6 else None
    out, stop = Path(out_file), Path(stop_file)
    sink = out.open("a", buffering=1)
    bot = LiveModel(
        symbol, timeframe, redis_url=url, recheck_interval=5.0, heartbeat_interval=30.0, cache_dir=cache,
        pack_token=token,
    )  # fmt: skip

    def record(_old: Champion | None, new: Champion) -> None:
        sink.write(f"{bot.bot_id} {new.version} {time.time():.6f}\n")

    bot.on_reload(record)
    bot.start()
    sink.write(f"{bot.bot_id} started\n")
    deadline = time.monotonic() + MAX_LIFE_S
    while not stop.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    bot.close()
    sink.close()


if __name__ == "__main__":
    main(sys.argv[1:])
