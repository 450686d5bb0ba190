"""The bot client's errors: one small tree, independent of the farm's.

Every error the client raises on purpose derives from :class:`ClientError`, and each class says who
handles it. The rule for a bot is always the same: a failure never takes away the model it is serving.
The farm's own errors extend these where they mean the same thing
(``trainfarm.shared.errors.ArtifactError`` is a :class:`PackError`), so a bot's ``except PackError`` also
catches what farm code raises.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of every deliberate bot-client error.

    Handled by: the bot, which keeps serving the version it has loaded (or none yet), reports the message
    (log, heartbeat) and carries on; nothing here is worth crashing a trading process for.
    """


class BarsError(ClientError, ValueError):
    """Bars handed to the features are unusable: a column missing, dates not datetimes, null, unsorted or
    duplicated.

    Also a ``ValueError``, because it is bad input to a pure function. Carries ``column`` when known.
    Handled by: the bot (fix the bar feed; no prediction for this call, the loaded model keeps serving);
    in the farm, dataset building turns it into a ``DataError`` that fails the run.
    """

    def __init__(self, problem: str, *, column: str | None = None) -> None:
        self.problem = problem
        self.column = column
        super().__init__(f"column '{column}': {problem}" if column else problem)


class PackError(ClientError):
    """An artifact pack is incomplete, tampered with, built for other features, or does not reproduce its
    own sample outputs.

    Handled by: the bot, which keeps serving the version it has and does not retry these bytes (they will
    not change by themselves); the farm raises its subclass ``ArtifactError`` and refuses to register or
    promote the pack.
    """


class ChampionError(ClientError):
    """The champion key in Redis is missing or malformed (not JSON, a field absent, a URI that is not a
    local pack folder), or no champion is loaded yet.

    Handled by: the bot, which keeps serving what it has and reads the key again on its next check.
    """


class NoSignalError(ClientError):
    """The newest closed bar cannot be scored: it is missing, stale, incomplete, or lacks features.

    Handled by: the bot, which stays out of the market for that bar; the reason is also in
    ``LiveModel.no_signal_reason`` and the heartbeat. Never a reason to stop serving the loaded version.
    """
