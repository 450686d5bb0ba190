"""The registry's errors (one module, so that the store and its promotion half share them without a cycle)."""

from __future__ import annotations

from trainfarm.shared.errors import FarmError, TransientError


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


class AmbiguousRunIdError(RegistryError):
    """An id prefix matches more than one run. Handled by: the CLI, which asks for a longer prefix."""


class RegistryConflictError(RegistryError):
    """A write contradicts what is stored (a run id reused for another market, a version for a failed run).

    Handled by: the task that tried it; a redelivered meta task reads the run's recorded version instead.
    """


class ActiveRunExistsError(RegistryConflictError):
    """A market already has an active run: the database holds at most one per (symbol, timeframe).

    Carries ``run_id``, the active run. Handled by: :meth:`Registry.claim_run`, whose callers (CLI, beat,
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


class NoChampionError(RegistryError):
    """A (symbol, timeframe) has no champion, or no previous champion to roll back to.

    Handled by: the CLI (`farm rollback`), which prints the message naming the market.
    """


class RegistryUnavailableError(TransientError):
    """The registry database did not answer (PostgreSQL down, SQLite locked past the busy timeout).

    Handled by: Celery tasks, which retry with backoff; the CLI prints the message.
    """
