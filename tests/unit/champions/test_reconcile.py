"""Reconciliation: pointers and Redis keys that lag the registry are repaired; agreement writes nothing."""

from __future__ import annotations

from collections.abc import Callable

import redis

from trainfarm.shared.champions.announce import read_champion
from trainfarm.shared.champions.publish import champion_pointer, promote_version, read_pointer
from trainfarm.shared.champions.reconcile import Repair, reconcile
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import FarmSettings
from trainfarm_client.contract import EVENTS_STREAM, champion_key


def test_agreement_writes_nothing(
    registry: Registry, make_version: Callable[..., str], settings: FarmSettings, rds: redis.Redis
) -> None:
    promote_version(make_version(), registry=registry, client=rds, settings=settings)
    promote_version(make_version("ETH_USDT", "12h"), registry=registry, client=rds, settings=settings)
    events = rds.xlen(EVENTS_STREAM)
    assert reconcile(registry, rds, settings) == []
    assert rds.xlen(EVENTS_STREAM) == events


def test_a_lost_key_a_stale_key_and_a_stale_pointer_are_re_announced(
    registry: Registry, make_version: Callable[..., str], settings: FarmSettings, rds: redis.Redis
) -> None:
    first, second = make_version(), make_version()
    promote_version(first, registry=registry, client=rds, settings=settings)
    stale = rds.get(champion_key("BTC_USDT", "1h"))
    promote_version(second, registry=registry, client=rds, settings=settings)
    eth = make_version("ETH_USDT", "12h")
    promote_version(eth, registry=registry, client=rds, settings=settings)
    sol = make_version("SOL_USDT", "1h")
    promote_version(sol, registry=registry, client=rds, settings=settings)
    # BTC: the key and the pointer still name the previous champion (the promotion's last steps failed);
    # ETH: Redis lost the key; SOL: the key holds no JSON at all.
    assert stale is not None
    rds.set(champion_key("BTC_USDT", "1h"), stale)
    champion_pointer(settings.artifacts_dir, "BTC_USDT", "1h").write_text(first + "\n")
    rds.delete(champion_key("ETH_USDT", "12h"))
    rds.set(champion_key("SOL_USDT", "1h"), "{not json")

    repairs = sorted(reconcile(registry, rds, settings), key=lambda r: r.symbol)
    assert repairs == [
        Repair("BTC_USDT", "1h", second, pointer=first, key=first),
        Repair("ETH_USDT", "12h", eth, pointer=eth, key=None),
        Repair("SOL_USDT", "1h", sol, pointer=sol, key="malformed"),
    ]
    for symbol, tf, version in (
        ("BTC_USDT", "1h", second),
        ("ETH_USDT", "12h", eth),
        ("SOL_USDT", "1h", sol),
    ):
        record = read_champion(rds, symbol, tf)
        assert record is not None and record["version"] == version
        assert read_pointer(settings.artifacts_dir, symbol, tf) == version
    assert reconcile(registry, rds, settings) == []  # repaired once, then quiet
