"""A replay's figures: the five policies' per-bar scores turned into metrics, month by month, and curves.

Every function is pure and takes the scores frame of :func:`trainfarm.shared.replay.scoring.score_bars`,
one row per (policy, bar), with the columns of :data:`SCORE_SCHEMA`, checked by :func:`check_scores`.
The five policies score identical bars, so a policy's log-loss minus the prior's is a comparison on the
same labelled bars. Per-bar log-loss clips the true class's probability at 1e-15, as
:func:`trainfarm.shared.evaluation.metrics.log_loss` does, so its mean is that function's value.

The book of a policy is :func:`trainfarm.shared.evaluation.book.book_pnl` run over the policy's whole
series in date order (a gap needs nothing: its ``bar_return`` is 0); its monthly P&L is that book cut by
calendar month (UTC), so the months sum to the whole. Non-finite numbers never reach the JSON: ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import polars as pl

from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.errors import DataError
from trainfarm.shared.evaluation.book import annualised_sharpe, book_pnl
from trainfarm.shared.evaluation.metrics import brier, expected_calibration_error, log_loss
from trainfarm.shared.evaluation.trading import max_drawdown, signal_rate_error
from trainfarm_client.arrays import FloatArray, IntArray

#: The policy whose promotions the shadow test decides on the bars that follow (``shadow_policy``).
SHADOW = "shadow"
POLICIES = ("gated", "always", "static", "prior", SHADOW)
#: The policies with a model, each compared with the prior.
MODEL_POLICIES = ("gated", "always", "static", SHADOW)
#: The probability columns, in the order of :data:`trainfarm.shared.dataset.labels.CLASSES`.
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{name}" for name in CLASSES)

_UTC_US = pl.Datetime("us", "UTC")
SCORE_SCHEMA: dict[str, pl.DataType] = {
    "date": _UTC_US,
    "policy": pl.String(),
    "point": pl.Int64(),
    "version": pl.String(),
    "trained_at": _UTC_US,
    **{column: pl.Float64() for column in PROB_COLUMNS},
    "signal": pl.Int8(),
    "label": pl.Int64(),
    "fwd_return": pl.Float64(),
    "bar_return": pl.Float64(),
}
_NOT_NULL = ("date", "policy", "point", *PROB_COLUMNS, "signal", "bar_return")
#: What happened at a bar: the same whichever policy scored it.
_TRUTH = ("label", "fwd_return", "bar_return")
_LOG_EPS = 1e-15  # as trainfarm.shared.evaluation.metrics.log_loss
_MONTH_DAYS = 30.4375  # 365.25 / 12
_MONTH_US = _MONTH_DAYS * 86_400 * 1_000_000


def check_scores(scores: pl.DataFrame) -> None:
    """Raise :class:`DataError` (naming the column) unless ``scores`` is a valid replay scores frame.

    Every column of :data:`SCORE_SCHEMA` with its type; no nulls where a value is always known; only the
    five policies and signals -1/0/+1; no bar scored twice by one policy; the five policies scoring
    identical dates (the replay's promise) and agreeing on each bar's label and returns.
    """
    for name, dtype in SCORE_SCHEMA.items():
        if name not in scores.columns:
            raise DataError("missing from the replay scores", column=name)
        if scores.schema[name] != dtype:
            raise DataError(f"must be {dtype}, got {scores.schema[name]}", column=name)
    for name in _NOT_NULL:
        if nulls := scores[name].null_count():
            raise DataError(f"{nulls} null value(s) in the replay scores", column=name)
    unknown = sorted(set(scores["policy"].unique().to_list()) - set(POLICIES))
    if unknown:
        raise DataError(f"unknown policies {unknown}; a replay scores {list(POLICIES)}", column="policy")
    bad_signals = sorted(set(scores["signal"].unique().to_list()) - {-1, 0, 1})
    if bad_signals:
        raise DataError(f"signals must be -1, 0 or +1, found {bad_signals}", column="signal")
    if scores.select(pl.struct("policy", "date").is_duplicated().any()).item():
        raise DataError("a policy scores the same bar more than once", column="date")
    per_date = scores.group_by("date").agg(
        pl.col("policy").n_unique().alias("policies"), *(pl.col(c).n_unique() for c in _TRUTH)
    )
    partial = per_date.filter(pl.col("policies") < len(POLICIES)).sort("date")
    if partial.height:
        first = partial["date"][0]
        have = sorted(scores.filter(pl.col("date") == first)["policy"].to_list())
        lacking = [p for p in POLICIES if p not in have]
        raise DataError(
            f"the policies do not score identical bars: {partial.height} bar(s) differ, the first "
            f"{first.isoformat()} scored by {have} but not by {lacking}",
            column="date",
        )
    for name in _TRUTH:
        if per_date.filter(pl.col(name) > 1).height:
            raise DataError("the policies disagree on a bar's realised value", column=name)


def policy_metrics(
    scores: pl.DataFrame,
    *,
    promotions: Mapping[str, int],
    horizon: int,
    fee: float,
    periods_per_year: float,
    ece_bins: int,
) -> dict[str, dict[str, object]]:
    """Per policy (all four keys), a JSON-ready dict of its figures over the whole replay.

    Keys: ``logloss``, ``brier``, ``ece`` (over labelled bars), ``scored_bars``, ``labelled_bars``,
    ``signals`` (rows with a non-zero signal), ``win_rate`` (share of signals with a known forward return
    whose realised return ``direction * (exp(fwd_return) - 1) - fee`` is > 0, as
    :func:`trainfarm.shared.evaluation.trading.simulate` counts it; None without such signals), ``sharpe``,
    ``max_drawdown`` and ``total_return`` of the overlapping book, ``promotions`` (from ``promotions``, 0
    when absent), ``logloss_vs_prior`` (log-loss minus the prior's on the same bars; negative = better)
    and ``monthly``: per calendar month (UTC) with bars, ``month`` ("YYYY-MM"), ``bars``,
    ``labelled_bars``, ``logloss``, ``brier`` (None without labelled bars), ``signals`` and ``pnl``.
    """
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    check_scores(scores)
    frames = {policy: _policy_frame(scores, policy) for policy in POLICIES}
    prior_ll = _logloss(_labelled(frames["prior"]))
    out: dict[str, dict[str, object]] = {}
    for policy, frame in frames.items():
        pnl = book_pnl(frame["signal"].to_numpy(), frame["bar_return"].to_numpy(), horizon=horizon, fee=fee)
        labelled = _labelled(frame)
        logloss = _logloss(labelled)
        has_labels = labelled.height > 0
        out[policy] = {
            "logloss": logloss,
            "brier": _finite(brier(_probs(labelled), _labels(labelled))) if has_labels else None,
            "ece": (
                _finite(expected_calibration_error(_probs(labelled), _labels(labelled), ece_bins))
                if has_labels
                else None
            ),
            "scored_bars": frame.height,
            "labelled_bars": labelled.height,
            "signals": int((frame["signal"] != 0).sum()),
            "win_rate": _win_rate(frame, fee),
            "sharpe": _finite(annualised_sharpe(pnl, periods_per_year)),
            "max_drawdown": _finite(max_drawdown(pnl)),
            "total_return": _finite(float(pnl.sum())),
            "promotions": int(promotions.get(policy, 0)),
            "logloss_vs_prior": (
                _finite(logloss - prior_ll) if logloss is not None and prior_ll is not None else None
            ),
            "monthly": _monthly(frame, pnl),
        }
    return out


def degradation_curve(scores: pl.DataFrame) -> list[dict[str, object]]:
    """Per whole month since the first scored bar (with bars): each model policy's log-loss minus the prior's.

    Month ``k`` holds the bars opening in ``[start + k * 30.4375 days, start + (k + 1) * 30.4375 days)``.
    Entries: ``month`` (k), ``bars`` (bars each policy scored that month) and, for ``static``, ``gated``
    and ``always``, the mean log-loss over the month's labelled bars minus the prior's on the same bars
    (None without labelled bars). The static model was trained at the start: its column is its
    degradation by months since training, beside the retrained policies'.
    """
    check_scores(scores)
    if scores.is_empty():
        return []
    wide = _bar_losses(scores)
    start = wide["date"][0]
    wide = wide.with_columns(
        ((pl.col("date") - start).dt.total_microseconds() / _MONTH_US).floor().cast(pl.Int64).alias("month")
    )
    months = (
        wide.group_by("month", maintain_order=True)
        .agg(pl.len().alias("bars"), *((pl.col(p) - pl.col("prior")).mean().alias(p) for p in MODEL_POLICIES))
        .sort("month")
    )
    return [
        {
            "month": int(row["month"]),
            **{p: _finite_opt(row[p]) for p in MODEL_POLICIES},
            "bars": int(row["bars"]),
        }
        for row in months.iter_rows(named=True)
    ]


def shipped_signal_rates(
    scores: pl.DataFrame, recorded: Mapping[str, Mapping[str, object]], *, horizon: int
) -> dict[str, object]:
    """Each ``always`` pack's signal rate on the bars it scored (after its data: out of sample for every
    part of it) against the gated rate its manifest records (``data.deployed.signal_rate``).

    ``recorded`` maps a version to that record; packs without one (not refit) are skipped. A pack is
    ``consistent`` when the two rates differ by at most the two 95% half-widths in quadrature
    (:func:`trainfarm.shared.training.deploy.rate_error` of each). Returns the counts and one entry per
    pack: version, bars, gated, shipped (out of sample), error, consistent.
    """
    check_scores(scores)
    frame = _policy_frame(scores, "always")
    packs: list[dict[str, object]] = []
    for (version,), rows in frame.group_by("version", maintain_order=True):
        record = recorded.get(str(version), {})
        gated, gated_error = record.get("gated_rate"), record.get("sampling_error")
        signals = (rows.sort("date")["signal"].to_numpy() != 0).astype(np.float64)
        if not isinstance(gated, float) or not isinstance(gated_error, float) or signals.size < 2:
            continue
        error = math.hypot(gated_error, signal_rate_error(signals, horizon))
        shipped = float(signals.mean())
        packs.append(
            {
                "version": str(version),
                "bars": int(signals.size),
                "gated": gated,
                "shipped": shipped,
                "error": _finite(error),
                "consistent": bool(abs(shipped - gated) <= error),
            }
        )
    return {
        "packs": len(packs),
        "consistent": sum(bool(p["consistent"]) for p in packs),
        "per_pack": packs,
    }


def rolling_logloss_vs_prior(scores: pl.DataFrame, *, window: int) -> pl.DataFrame:
    """Per labelled bar: the mean over the last ``window`` labelled bars of each model policy's per-bar
    log-loss minus the prior's (columns ``date``, ``gated``, ``always``, ``static``).

    The first ``window - 1`` bars average the labelled bars so far (nothing is left blank).
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 bar, got {window}")
    check_scores(scores)
    wide = _bar_losses(scores).filter(pl.col("prior").is_not_null())
    return wide.select(
        "date",
        *(
            (pl.col(p) - pl.col("prior")).rolling_mean(window_size=window, min_samples=1).alias(p)
            for p in MODEL_POLICIES
        ),
    )


def equity_curves(scores: pl.DataFrame, *, horizon: int, fee: float) -> pl.DataFrame:
    """Cumulative book P&L of each policy per bar: columns ``date`` and the five policies."""
    check_scores(scores)
    frames = {policy: _policy_frame(scores, policy) for policy in POLICIES}
    columns = {
        policy: np.cumsum(
            book_pnl(frame["signal"].to_numpy(), frame["bar_return"].to_numpy(), horizon=horizon, fee=fee)
        )
        for policy, frame in frames.items()
    }
    return pl.DataFrame({"date": frames["prior"]["date"], **columns})


# ------------------------------------------------------------------------------------------- helpers


def _policy_frame(scores: pl.DataFrame, policy: str) -> pl.DataFrame:
    return scores.filter(pl.col("policy") == policy).sort("date")


def _labelled(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("label").is_not_null())


def _probs(frame: pl.DataFrame) -> FloatArray:
    return frame.select(PROB_COLUMNS).to_numpy().astype(np.float64)


def _labels(frame: pl.DataFrame) -> IntArray:
    return frame["label"].to_numpy().astype(np.int64)


def _logloss(labelled: pl.DataFrame) -> float | None:
    return _finite(log_loss(_probs(labelled), _labels(labelled))) if labelled.height else None


def _win_rate(frame: pl.DataFrame, fee: float) -> float | None:
    signal = frame["signal"].to_numpy().astype(np.float64)
    fwd = frame["fwd_return"].to_numpy().astype(np.float64)  # null -> NaN
    known = (signal != 0.0) & np.isfinite(fwd)
    if not known.any():
        return None
    realised = signal[known] * np.expm1(fwd[known]) - fee  # as trading.simulate
    return float((realised > 0.0).mean())


def _monthly(frame: pl.DataFrame, pnl: FloatArray) -> list[dict[str, object]]:
    tagged = frame.with_columns(
        pl.col("date").dt.strftime("%Y-%m").alias("month"),
        pl.Series("pnl", pnl, dtype=pl.Float64),
    )
    out: list[dict[str, object]] = []
    for part in tagged.partition_by("month", maintain_order=True):
        labelled = _labelled(part)
        out.append(
            {
                "month": part["month"][0],
                "bars": part.height,
                "labelled_bars": labelled.height,
                "logloss": _logloss(labelled),
                "brier": _finite(brier(_probs(labelled), _labels(labelled))) if labelled.height else None,
                "signals": int((part["signal"] != 0).sum()),
                "pnl": _finite(float(part["pnl"].sum())),
            }
        )
    return out


def _bar_losses(scores: pl.DataFrame) -> pl.DataFrame:
    """``date`` and each policy's per-bar log-loss (null where the bar has no label), in date order."""
    columns: dict[str, pl.Series] = {}
    for policy in POLICIES:
        frame = _policy_frame(scores, policy)
        label = frame["label"].fill_null(-1).to_numpy().astype(np.int64)
        known = label >= 0
        loss = np.full(frame.height, np.nan)
        picked = _probs(frame)[np.flatnonzero(known), label[known]]
        loss[known] = -np.log(np.clip(picked, _LOG_EPS, 1.0))
        columns[policy] = pl.Series(policy, loss, dtype=pl.Float64).fill_nan(None)
    return pl.DataFrame({"date": _policy_frame(scores, "prior")["date"], **columns})


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _finite_opt(value: object) -> float | None:
    return _finite(float(value)) if isinstance(value, int | float) else None


__all__ = [
    "MODEL_POLICIES",
    "POLICIES",
    "PROB_COLUMNS",
    "SCORE_SCHEMA",
    "SHADOW",
    "check_scores",
    "degradation_curve",
    "equity_curves",
    "policy_metrics",
    "rolling_logloss_vs_prior",
    "shipped_signal_rates",
]
