"""Drift measures: the training distribution a pack ships, the PSI of live features against it, the
calibration gap of live predictions, and the comparison of a bot's live features with the farm's.

Pure numpy/polars (no Celery, no I/O): the meta stage stores a :class:`FeatureDistribution` in every
pack's manifest (``feature_distribution``); :mod:`trainfarm.workers.checks.live_window` computes the live
window's :func:`psi` and :func:`calibration_gap` against the champion, and
:mod:`trainfarm.workers.checks.skew` compares the features bots reported (:func:`compare_features`); the
trigger policies (:mod:`trainfarm.shared.monitoring.policies`) only read the results. How the policies use
them, their thresholds and the measures' noise floors: docs/operations.md#triggers.

Population stability index, per feature, over the training distribution's bins::

    PSI = sum_b (a_b - e_b) * ln(a_b / e_b)

``e_b`` is the share of training rows in bin ``b``, ``a_b`` the share of live rows, both floored at
:data:`PSI_EPSILON` so that an empty bin gives a large but finite term instead of infinity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt
import polars as pl

from trainfarm_client.arrays import FloatArray

#: Floor on a bin's share in the PSI: an empty live (or training) bin adds ``(a - e) * ln(a / 1e-4)``,
#: large but finite. The usual choice in credit-scoring practice, where PSI comes from.
PSI_EPSILON = 1e-4
#: Bins of the training distribution: deciles (fewer after deduplicating tied quantiles).
QUANTILES: tuple[float, ...] = tuple(q / 10 for q in range(1, 10))
#: Features whose live distribution depends on the window's length, not on the market: a 500-bar window
#: of 5m bars covers under two days, so its day-of-week values always differ from training's whole weeks.
#: Their distribution is stored in the pack like any other, but :func:`psi` skips them by default.
CALENDAR_FEATURES: frozenset[str] = frozenset({"hour_sin", "hour_cos", "dow_sin", "dow_cos"})
#: Version of the manifest's ``feature_distribution`` layout.
DISTRIBUTION_FORMAT = 1


@dataclass(frozen=True)
class Bins:
    """One feature's training distribution: interior cut points and the share of rows in each bin.

    Bin ``i`` holds the values ``edges[i-1] < x <= edges[i]`` (the first bin everything up to
    ``edges[0]``, the last everything above ``edges[-1]``), so ``len(shares) == len(edges) + 1``.
    """

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    def counts(self, values: FloatArray) -> npt.NDArray[np.int64]:
        """Rows of ``values`` (finite ones) in each bin."""
        idx = np.searchsorted(np.asarray(self.edges, dtype=np.float64), values, side="left")
        return np.bincount(idx, minlength=len(self.edges) + 1).astype(np.int64)


@dataclass(frozen=True)
class FeatureDistribution:
    """Per feature, the decile bins of the rows the shipped models were fitted on (see :meth:`fit`)."""

    features: Mapping[str, Bins]
    rows: int  #: training rows the distribution was computed from
    fitted_on: tuple[str, ...] = field(default=())  #: the snapshot splits those rows came from

    @classmethod
    def fit(
        cls, rows: npt.ArrayLike, names: Sequence[str], *, fitted_on: Sequence[str] = ()
    ) -> FeatureDistribution:
        """Decile bins of each column of ``rows`` (named ``names``), non-finite values left out.

        Edges are the 10%..90% quantiles, deduplicated (a constant feature has one edge: its value, and
        every row in the first bin); a feature without any finite value gets no bins and is never scored.
        """
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"expected rows of {len(names)} features, got shape {x.shape}")
        features: dict[str, Bins] = {}
        for j, name in enumerate(names):
            values = x[:, j][np.isfinite(x[:, j])]
            if values.size == 0:
                continue
            edges = tuple(float(e) for e in np.unique(np.quantile(values, QUANTILES)))
            bins = Bins(edges, ())
            counts = bins.counts(values)
            features[name] = Bins(edges, tuple(float(c) / values.size for c in counts))
        return cls(features, int(x.shape[0]), tuple(fitted_on))

    @classmethod
    def of_snapshot(
        cls, frame: pl.DataFrame, names: Sequence[str], splits: Sequence[str]
    ) -> FeatureDistribution:
        """The distribution of the snapshot rows in ``splits`` (the ones the deployed base models saw)."""
        part = frame.filter(pl.col("split").is_in(list(splits))).select(names)
        return cls.fit(part.to_numpy(), names, fitted_on=splits)

    @classmethod
    def of_deployment(
        cls, frame: pl.DataFrame, names: Sequence[str], deployed: Mapping[str, object]
    ) -> FeatureDistribution:
        """The distribution of the rows a pack's shipped base models were fitted on.

        ``deployed`` is the manifest's ``data.deployed`` (see :mod:`trainfarm.shared.training.deploy`):
        its ``base_models_fitted_on`` names the snapshot splits (train only for a rejected candidate,
        every split for a refit, promotable one), so the live window is compared with exactly what the
        shipped models learned from; without it, the whole snapshot.
        """
        splits = deployed.get("base_models_fitted_on")
        chosen = [str(s) for s in splits] if isinstance(splits, list) and splits else None
        return cls.of_snapshot(frame, names, chosen or sorted(set(frame["split"].to_list())))

    def to_json(self) -> dict[str, object]:
        """What a pack's manifest stores as ``feature_distribution``."""
        return {
            "format": DISTRIBUTION_FORMAT,
            "kind": "deciles",
            "rows": self.rows,
            "fitted_on": list(self.fitted_on),
            "features": {
                name: {"edges": list(b.edges), "shares": list(b.shares)} for name, b in self.features.items()
            },
        }

    @classmethod
    def from_json(cls, data: object) -> FeatureDistribution:
        """Parse :meth:`to_json`'s output; ``ValueError`` naming what is malformed."""
        if not isinstance(data, Mapping) or not isinstance(data.get("features"), Mapping):
            raise ValueError("feature_distribution is not an object with 'features'")
        if data.get("format", DISTRIBUTION_FORMAT) != DISTRIBUTION_FORMAT:
            raise ValueError(f"feature_distribution format {data.get('format')!r} is not readable here")
        features: dict[str, Bins] = {}
        for name, entry in data["features"].items():
            try:
                edges = tuple(float(e) for e in entry["edges"])
                shares = tuple(float(s) for s in entry["shares"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"feature_distribution of {name!r} is malformed ({exc!r})") from None
            if len(shares) != len(edges) + 1 or list(edges) != sorted(edges):
                raise ValueError(f"feature_distribution of {name!r}: edges and shares do not match")
            features[str(name)] = Bins(edges, shares)
        rows = data.get("rows", 0)
        fitted_on = data.get("fitted_on", [])
        return cls(
            features,
            int(rows) if isinstance(rows, int) else 0,
            tuple(str(s) for s in fitted_on) if isinstance(fitted_on, list) else (),
        )


def psi(
    distribution: FeatureDistribution,
    live_rows: npt.ArrayLike,
    names: Sequence[str],
    *,
    skip: frozenset[str] = CALENDAR_FEATURES,
) -> dict[str, float]:
    """Per-feature PSI of ``live_rows`` (columns named ``names``) against ``distribution``.

    Non-finite live values are dropped per feature; a feature with no finite live value, without bins
    in the distribution, or in ``skip`` (default: the calendar features) is left out of the result.
    """
    x = np.asarray(live_rows, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"expected rows of {len(names)} features, got shape {x.shape}")
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        bins = distribution.features.get(name)
        values = x[:, j][np.isfinite(x[:, j])]
        if bins is None or name in skip or values.size == 0:
            continue
        live = np.maximum(bins.counts(values) / values.size, PSI_EPSILON)
        train = np.maximum(np.asarray(bins.shares, dtype=np.float64), PSI_EPSILON)
        out[name] = float(np.sum((live - train) * np.log(live / train)))
    return out


def calibration_gap(probs: npt.ArrayLike, labels: npt.ArrayLike, *, bins: int = 10) -> float:
    """Mean absolute gap between predicted and realised frequency, by decile, pooled over the classes.

    Every (row, class) pair is one one-vs-rest prediction: the probability of the class against whether
    the row's realised class is it. The pairs of all classes are pooled (3 per row), sorted by
    probability and cut into ``bins`` equal-count groups (deciles: equal-width bins would put almost all
    of a three-class model's probabilities, which sit between 0.2 and 0.5, into two or three bins);
    the gap is the row-weighted mean over the groups of ``|mean probability - realised share|``. 0 for
    a perfectly calibrated model on infinitely many rows; on finitely many the binned realised shares
    are noisy and the gap is not: about 0.045 on 200 independent rows of a calibrated three-class model,
    0.03 on 500 (simulated).
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"expected (n, classes) probabilities and n labels, got {p.shape} and {y.shape}")
    if p.shape[0] == 0:
        raise ValueError("no rows to measure calibration on")
    pred = p.reshape(-1)
    hit = (y[:, None] == np.arange(p.shape[1])[None, :]).reshape(-1).astype(np.float64)
    order = np.argsort(pred, kind="stable")
    total = 0.0
    for group in np.array_split(order, min(bins, pred.size)):
        if group.size:
            total += group.size * abs(float(pred[group].mean()) - float(hit[group].mean()))
    return total / pred.size


@dataclass(frozen=True)
class SkewReport:
    """Live features reported by bots against the farm's recomputation of the same bars."""

    checked: int  #: reported rows compared
    mismatched: int  #: rows with at least one feature outside the tolerance
    not_checked: int = 0  #: reported rows whose bar the farm's store lacks (never counted as a mismatch)
    worst_feature: str | None = None
    worst_bar: datetime | None = None
    worst_difference: float | None = None  #: |reported - recomputed| of that feature on that bar
    problems: tuple[str, ...] = ()  #: rows that could not be compared as they are (wrong length, ...)

    @property
    def mismatch_share(self) -> float | None:
        """Share of the checked rows that mismatched; None when none was checked."""
        return self.mismatched / self.checked if self.checked else None

    def to_json(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "mismatched": self.mismatched,
            "not_checked": self.not_checked,
            "mismatch_share": self.mismatch_share,
            "worst_feature": self.worst_feature,
            "worst_bar": self.worst_bar.isoformat() if self.worst_bar else None,
            "worst_difference": self.worst_difference,
            "problems": list(self.problems),
        }


#: Tolerance of the skew comparison: ``|reported - recomputed| <= SKEW_ABS + SKEW_REL * |recomputed|``.
#: Bot and farm run the same code on float64, so honest differences are float noise (summation order of
#: rolling windows, ~1e-12) and the EWMs' memory of where their history started (~1e-9 after the 500
#: bars a bot should feed, MIN_HISTORY_BARS); a real skew (another price source, a missing or shifted
#: bar, a bug) moves values by 1e-4 or far more. 1e-6 sits three orders of magnitude from either side.
SKEW_ABS = 1e-6
SKEW_REL = 1e-6


def compare_features(
    reported: Sequence[tuple[datetime, Sequence[float]]],
    recomputed: Mapping[datetime, Sequence[float]],
    names: Sequence[str],
) -> SkewReport:
    """Compare each reported (bar, feature values) with the farm's values of that bar.

    A bar missing from ``recomputed`` (the store lacks it, or its features are incomplete there) is
    "not checked", never a mismatch; a row of the wrong length is a mismatch named in ``problems``.
    """
    checked = mismatched = not_checked = 0
    worst: tuple[float, str, datetime] | None = None
    problems: list[str] = []
    for bar, values in reported:
        farm = recomputed.get(bar)
        if farm is None:
            not_checked += 1
            continue
        checked += 1
        if len(values) != len(names):
            mismatched += 1
            problems.append(f"{bar.isoformat()}: {len(values)} feature values, the pack has {len(names)}")
            continue
        got = np.asarray(values, dtype=np.float64)
        want = np.asarray(farm, dtype=np.float64)
        diff = np.abs(got - want)
        bad = ~(diff <= SKEW_ABS + SKEW_REL * np.abs(want))  # NaN on either side counts as bad
        if bad.any():
            mismatched += 1
            j = int(np.argmax(np.where(bad, np.nan_to_num(diff, nan=math.inf), -1.0)))
            size = float(diff[j]) if math.isfinite(float(diff[j])) else math.inf
            if worst is None or size > worst[0]:
                worst = (size, names[j], bar)
    return SkewReport(
        checked,
        mismatched,
        not_checked,
        worst[1] if worst else None,
        worst[2] if worst else None,
        worst[0] if worst else None,
        tuple(problems),
    )


def features_json(values: Sequence[float]) -> str:
    """The compact JSON text a list of feature values is stored and streamed as."""
    return json.dumps([float(v) for v in values], separators=(",", ":"), allow_nan=False)


__all__ = [
    "CALENDAR_FEATURES",
    "PSI_EPSILON",
    "SKEW_ABS",
    "SKEW_REL",
    "Bins",
    "FeatureDistribution",
    "SkewReport",
    "calibration_gap",
    "compare_features",
    "features_json",
    "psi",
]
