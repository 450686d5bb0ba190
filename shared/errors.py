"""The farm's one error tree.

Every error the farm raises on purpose derives from :class:`FarmError`. Each class says who handles it.
Only :class:`TransientError` and its children are ever retried (by Celery tasks, with backoff); everything
else is a fact about the input or the set-up that retrying cannot change.
"""

from __future__ import annotations

from trainfarm_client.errors import PackError


class FarmError(Exception):
    """Base of every deliberate farm error.

    Handled by: the CLI (prints the message, exits 1), Celery tasks (mark the run failed with the message).
    """


class ConfigError(FarmError):
    """Settings or the config file are invalid (unknown timeframe, bad duration, unreadable TOML).

    Handled by: whoever starts a process; raised before any work begins, never retried.
    """


class SymbolError(FarmError):
    """A symbol cannot be turned into a canonical id, or could escape the store folder.

    Handled by: the CLI and the data store; nothing is read or written for such a symbol.
    """


class DataError(FarmError):
    """Market data is unusable: a validation rule failed for a file, column and row.

    Carries ``file``, ``column`` and ``row`` (1-based data row, header excluded) when known, so a person
    can open the file and find the bad line. Handled by: the importer, which refuses the whole file and
    leaves the store exactly as it was; the CLI prints the message.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.column = column
        self.row = row
        where = [part for part in (file, _col(column), _row(row)) if part]
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


def _col(column: str | None) -> str | None:
    return f"column '{column}'" if column else None


def _row(row: int | None) -> str | None:
    return f"row {row}" if row is not None else None


class DataNotFoundError(FarmError):
    """A symbol (or timeframe) was asked for that the store does not hold.

    Handled by: the CLI (suggests `farm data import`), dataset building (fails the run).
    """


class ReplayFailedError(FarmError):
    """A replay point could not be trained (too few bars at its time, a model's error).

    Handled by: the CLI (one line naming the point and its error, exit 1); `farm replay resume` retries the
    failed points and reuses every trained one.
    """


class CausalityError(FarmError):
    """A replay was about to score a bar with a model whose data reaches that bar (a look-ahead).

    A bug, never retried. Handled by: the replay driver, which fails the replay naming the bar and model.
    """


class DatasetError(FarmError):
    """A dataset snapshot cannot be built: too few labelled rows for the splits, folds or horizon.

    Handled by: dataset building and later the retrain run, which is marked failed with this message.
    """


class EmbeddedRedisError(FarmError):
    """The embedded Redis server could not be started or stopped (binary missing, socket not appearing).

    Handled by: the process that needed Redis; not retried, because the cause is local and persistent.
    """


class TransientError(FarmError):
    """A failure that may go away by itself (network blip, Redis restarting, a lock held by a peer).

    Handled by: Celery tasks, which retry these (and only these) with exponential backoff.
    """


class SourceUnavailableError(TransientError):
    """A bar source could not answer after its own retries: the exchange is down, rate-limits us or answers
    5xx, or a watched file is being written while it is read.

    Handled by: the bar sync, which writes nothing for that symbol, reports it in one line and tries again
    at its next run (beat's ``ingest-bars`` entry, or the next ``farm data sync``).
    """


class RedisUnavailableError(TransientError):
    """Redis did not answer within the connection timeout.

    Handled by: callers that can wait (tasks retry, bots keep serving their loaded model and reconnect).
    """


class AlertDeliveryError(TransientError):
    """An alert channel did not take an alert: Apprise reported the notification failed (the service
    refused it, answered an error, or could not be reached in time). The message names the channel by its
    label and never holds the URL's tokens or a password.

    Handled by: the alert outbox (``deliver_due``), which retries the delivery with backoff and drops it into
    ``farm:alerts:dead`` after ``[alerts] max_attempts``.
    """


class ArtifactError(FarmError, PackError):
    """An artifact pack is incomplete, tampered with, or does not reproduce its own sample outputs.

    Handled by: the loader's caller. Bots keep serving the version they have; the farm refuses to register
    or promote the pack. Never retried: the bytes on disk will not change by themselves.
    """


# --- run orchestration (raised by trainfarm.workers; defined here so the tree stays one tree) -----------


class BrokerUnavailableError(TransientError):
    """The Celery broker refused or dropped the connection while a run was being enqueued.

    Handled by: the CLI (one line, exit 1) and triggers, which try again later; the run that could not be
    enqueued is marked failed, so it never blocks its market.
    """


class PayloadError(FarmError):
    """A task's payload is not what its task takes: not a JSON object, above the size cap, or a field is
    missing, unknown or invalid (the message names the task and the field).

    Handled by: the task, which fails before touching anything (no run, file or key is written); never
    retried, because the same message would be refused again.
    """


class RunEndedError(FarmError):
    """A stage was delivered for a run that has already succeeded or failed (a late or duplicate task).

    Handled by: the task, which does nothing more; the chord errback recognises it and records nothing,
    because the run's outcome was recorded once already. Never retried.
    """


class ConfigMismatchError(ConfigError):
    """A stage sees another config than the one its run was prepared with (its hash differs).

    Handled by: the task, which fails the run naming both hashes; never retried, because the worker's
    config file will not change by itself. Workers of one farm must share one config file.
    """


class HeaderResultError(FarmError):
    """The meta stage did not receive each base model's result exactly once (chord misfire).

    Handled by: the meta task, which fails the run with this message; never retried as-is.
    """


class MissingHeaderResultError(HeaderResultError):
    """Some base models' results have not arrived yet: a duplicated header task fired the chord body early.

    Handled by: the meta task, which retries after a pause (the model is still training) a bounded number
    of times, then fails the run naming the missing models.
    """


class PoisonMessageError(FarmError):
    """A task was delivered more often than ``max_deliveries``: its worker keeps dying on it.

    Handled by: the task's chord errback, which fails the run; the message is not redelivered again.
    """


class StageTimeoutError(FarmError):
    """A stage ran past the task time limit (``training.task_time_limit``).

    Handled by: the chord errback, which fails the run naming the stage; never retried (it would time out
    again on the same data).
    """


# --- the registry ------------------------------------------------------------------------------------


class RegistryError(FarmError):
    """The registry refused an operation or cannot work with its database.

    Handled by: the CLI (prints the message, exits 1) and Celery tasks (mark the run failed, no retry).
    """


class RunNotFoundError(RegistryError):
    """No run has the id (or id prefix) asked for.

    Handled by: the CLI (`farm runs show`), and tasks of a run that was never recorded (they fail it).
    """


class VersionNotFoundError(RegistryError):
    """No version has the id asked for. Handled by: the CLI and promotion (refuses to promote)."""


class ReplayNotFoundError(RegistryError):
    """No replay has the id (or id prefix) asked for, or it has no such point.

    Handled by: the CLI (`farm replay show/resume/delete`: one line, exit 1) and the web page (404).
    """


class UnknownMarketError(RegistryError):
    """A well-spelled market that is neither in the config's universe nor has any version: nothing is known
    of it. Handled by: the dashboard's history page (404 naming the market)."""


class AmbiguousRunIdError(RegistryError):
    """An id prefix matches more than one run. Handled by: the CLI, which asks for a longer prefix."""


class RegistryConflictError(RegistryError):
    """A write contradicts what is stored (a run id reused for another market, a version for a failed run).

    Handled by: the task that tried it; a redelivered meta task reads the run's recorded version instead.
    """


class ActiveRunExistsError(RegistryConflictError):
    """A market already has an active run: the database holds at most one per (symbol, timeframe).

    Carries ``run_id``, the active run. Handled by: :meth:`RunStore.claim`, whose callers (CLI, beat,
    triggers) merge into that run instead of starting a second one.
    """

    def __init__(self, message: str, run_id: str = "") -> None:
        super().__init__(message)
        self.run_id = run_id

    def __reduce__(self) -> tuple[type[ActiveRunExistsError], tuple[str, str]]:
        # Survives pickling (process pools, test workers) with its run id.
        return (type(self), (str(self), self.run_id))


class PromotionRefusedError(RegistryConflictError):
    """A promotion, rollback or rejection that the versions' states forbid (a rejected or pruned version
    promoted by the gates, the champion rejected, the champion changed while a rollback was prepared).

    Handled by: the CLI (one line, exit 1) and the promotion task (the run keeps its verdict; no retry).
    """


class ShadowRefusedError(RegistryConflictError):
    """A challenger that cannot start or end as asked: the market has no champion to shadow, the version is
    the champion, pruned, of another market, already decided, or the market has no active challenger.

    Handled by: the CLI (`farm shadow`: one line, exit 1) and the promotion stage, which promotes directly
    when there is no champion to compare with.
    """


class NoChampionError(RegistryError):
    """A (symbol, timeframe) has no champion, or no previous champion to roll back to.

    Handled by: the CLI (`farm rollback`), which prints the message naming the market.
    """


class RegistryUnavailableError(TransientError):
    """The registry database did not answer (PostgreSQL down, SQLite locked past the busy timeout).

    Handled by: Celery tasks, which retry with backoff; the CLI prints the message.
    """
