"""`farm runs`, `farm runs show RUN`, `farm models SYM TF`: what the registry recorded; `farm migrate`.

Registered on the main app by :func:`register`. JSON listings are arrays of the registry's records
(``RunRecord.to_json()``, ``VersionRecord.to_json()``); ``runs show --json`` is one run object with its
per-model rows under ``models``; each ``models --json`` entry adds ``champion`` (bool) and ``gates``
(``{"passed": bool | null, "failed": [check names]}``) to the version record, whose ``gate_report`` is the
full report.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from trainfarm.cli.output import console, print_json, print_table
from trainfarm.shared.champions.publish import gate_summary
from trainfarm.shared.connections import redact_url
from trainfarm.shared.errors import ArtifactError
from trainfarm.shared.packs.artifacts import read_manifest
from trainfarm.shared.packs.attributions import Attributions
from trainfarm.shared.registry import Registry, RegistryError, RunRecord, VersionRecord, VersionStatus, metric
from trainfarm.shared.settings import get_settings
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import parse_timeframe

runs_app = typer.Typer(help="Retrain runs recorded in the registry.")

#: Errors are cut to this many characters in tables (`farm runs show` prints the whole message).
_ERROR_WIDTH = 60


def _short(text: str | None, width: int = _ERROR_WIDTH) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _secs(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def _problem(run: RunRecord) -> str:
    """The failed model and the first line of the error, for one table cell."""
    if run.failed_model and run.error:
        return _short(f"{run.failed_model}: {run.error}")
    return _short(run.failed_model or run.error)


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="only this market")] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe", "-t", help="only this timeframe")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="at most this many runs")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array")] = False,
) -> None:
    """List retrain runs, newest first (`farm runs show RUN` for one run's models)."""
    if ctx.invoked_subcommand is not None:
        return
    sym = canonical_symbol(symbol) if symbol is not None else None
    tf = parse_timeframe(timeframe) if timeframe is not None else None
    found = Registry.open().runs.newest(sym, tf, limit=limit)
    if as_json:
        print_json([run.to_json() for run in found])
        return
    if not found:
        console.print("no runs recorded yet; start one with `farm retrain SYMBOL`")
        return
    print_table(
        "retrain runs (newest first)",
        ["id", "symbol", "tf", "reason", "status", "created (UTC)", "seconds", "error"],
        [
            [
                r.id[:8],
                r.symbol,
                r.timeframe,
                r.reason,
                r.status.value,
                r.created_at,
                _secs(r.seconds),
                _problem(r),
            ]
            for r in found
        ],
    )


@runs_app.command("show")
def show(
    run: Annotated[str, typer.Argument(help="run id, or a unique prefix of it")],
    as_json: Annotated[bool, typer.Option("--json", help="print the run and its models as JSON")] = False,
) -> None:
    """One run: its steps, outcome and every base model's result."""
    registry = Registry.open()
    record = registry.runs.find(run)
    results = registry.runs.base_results(record.id)
    if as_json:
        print_json(record.to_json() | {"models": [r.to_json() for r in results]})
        return
    fields: list[tuple[str, object]] = [
        ("run", record.id),
        ("market", f"{record.symbol} {record.timeframe}"),
        ("reason", record.reason),
        ("status", record.status.value),
        ("created", _when(record.created_at)),
        ("started", _when(record.started_at)),
        ("finished", _when(record.finished_at)),
        ("seconds", f"{record.seconds:.1f}" if record.seconds is not None else None),
        ("version", record.version),
        ("snapshot", record.snapshot_hash),
        ("config hash", record.config_hash),
        ("celery task", record.celery_task_id),
        ("failed model", record.failed_model),
        ("error", record.error),
    ]
    for name, value in fields:
        if value is not None:
            console.print(f"[bold]{name:>12}[/]  {value}", soft_wrap=True)
    if not results:
        console.print("no base model has started yet")
        return
    print_table(
        "base models",
        ["model", "family", "status", "device", "worker", "seconds", "test log-loss", "error"],
        [
            [
                r.model,
                r.family,
                r.status.value,
                r.device,
                r.worker,
                _secs(r.seconds),
                r.test_logloss,
                _short(r.error),
            ]
            for r in results
        ],
    )


def _when(value: datetime | None) -> str | None:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value is not None else None


def models(
    symbol: Annotated[str, typer.Argument(help="market, e.g. BTC/USDT")],
    timeframe: Annotated[str, typer.Argument(help="5m, 1h, 12h or 24h")],
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array")] = False,
) -> None:
    """Versions of one symbol and timeframe, newest first: status, gate verdict, test log-loss."""
    sym, tf = canonical_symbol(symbol), parse_timeframe(timeframe)
    registry = Registry.open()
    versions = registry.versions.of_market(sym, tf)
    if as_json:
        # Each version's record (gate_report in full) plus the verdict summary and a champion flag.
        print_json([_version_json(v) for v in versions])
        return
    if not versions:
        console.print(f"no versions of {sym} {tf.value} yet")
        return
    print_table(
        f"versions of {sym} {tf.value} (newest first)",
        [
            "",
            "version",
            "status",
            "gates",
            "created (UTC)",
            "run",
            "stacker",
            "test log-loss",
            "prior log-loss",
        ],
        [_version_row(v) for v in versions],
    )
    champion = next((v for v in versions if v.status is VersionStatus.CHAMPION), None)
    previous = registry.champions.previous(sym, tf) if champion is not None else None
    if champion is None:
        console.print("no champion yet")
    else:
        back = f"; `farm rollback` returns to {previous.version}" if previous is not None else ""
        console.print(f"champion: [bold]{champion.version}[/]{back}")


def _version_json(v: VersionRecord) -> dict[str, object]:
    summary = gate_summary(v.gate_report)
    return v.to_json() | {
        "champion": v.status is VersionStatus.CHAMPION,
        "gates": {"passed": summary.passed, "failed": list(summary.failed)},
        "attributions": _attributions(v),
    }


def _attributions(v: VersionRecord) -> dict[str, object] | None:
    """What the version's models relied on, from its pack's verified manifest (None: pruned, unreadable,
    or a pack written before attributions)."""
    try:
        manifest = read_manifest(Path(v.path), expected_sha256=v.manifest_sha256)
    except ArtifactError:
        return None
    found = Attributions.of_manifest(manifest)
    return found.to_json() if found is not None else None


def _version_row(v: VersionRecord) -> list[object]:
    status = v.status.value + (" (pruned)" if v.pruned_at is not None else "")
    return [
        "*" if v.status is VersionStatus.CHAMPION else "",
        v.version,
        status,
        _short(gate_summary(v.gate_report).describe()),
        v.created_at,
        v.run_id[:8],
        _stacker(v),
        v.meta_logloss,
        v.prior_logloss,
    ]


def _stacker(v: VersionRecord) -> str | None:
    """The stacker the run chose (by purged out-of-fold log-loss); packs before format 2 have none."""
    stacker = v.metrics.get("stacker")
    chosen = stacker.get("chosen") if isinstance(stacker, dict) else None
    return chosen if isinstance(chosen, str) else None


def print_run_metrics(runs: Sequence[RunRecord]) -> None:
    """A table of finished runs with their version's test log-loss against the prior (or the error)."""
    registry = Registry.open()
    rows: list[list[object]] = []
    for run in runs:
        version: VersionRecord | None = None
        if run.version is not None:
            try:
                version = registry.versions.get(run.version)
            except RegistryError:
                version = None  # shown as a blank cell; the run row still says what happened
        rows.append(
            [
                run.id[:8],
                run.symbol,
                run.timeframe,
                run.status.value,
                _secs(run.seconds),
                run.version,
                _stacker(version) if version else None,
                version.meta_logloss if version else None,
                version.prior_logloss if version else None,
                metric(version.metrics, ("best_base", "logloss")) if version else None,
                metric(version.metrics, ("meta", "ece")) if version else None,
                metric(version.metrics, ("trading", "sharpe")) if version else None,
                _problem(run),
            ]
        )
    print_table(
        "runs (metrics on each run's test split)",
        [
            "id",
            "symbol",
            "tf",
            "status",
            "seconds",
            "version",
            "stacker",
            "meta log-loss",
            "prior log-loss",
            "best base",
            "ECE",
            "sharpe",
            "error",
        ],
        rows,
    )


def migrate() -> None:
    """Bring the registry database to the newest schema (the one-shot `migrate` service of a deployment)."""
    from trainfarm.shared.registry import upgrade
    from trainfarm.shared.registry.migrations import head_revision

    settings = get_settings()
    upgrade(settings.database)
    console.print(f"registry {redact_url(settings.database)} is at revision {head_revision()}")


def register(app: typer.Typer) -> None:
    """Add `runs` (with `runs show`), `models` and `migrate` to the main `farm` app."""
    app.add_typer(runs_app, name="runs")
    app.command("models")(models)
    app.command("migrate")(migrate)
