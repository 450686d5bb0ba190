"""Train one base model of one retrain run: out-of-fold, calibration and test probabilities plus the model.

The stacker learns on the out-of-fold probabilities and is then applied to the final model's, so both come
from comparable fits with the same parameters and the same early-stopping rule: a boosted model's rounds
are chosen by early stopping on the purged tail (``inner_holdout_fraction``) of the rows it is fitted on
(:func:`trainfarm.shared.dataset.splits.inner_holdout`). The final model early-stops on the tail of the
train split and is refitted on the whole split with those rounds; each fold model
(:func:`trainfarm.shared.dataset.splits.walk_forward_folds`) early-stops on the tail of its own training
rows and predicts its validation chunk with that fit. (The train split's tail lies inside the
out-of-fold region, so fold models using its rounds would predict rows their rounds were tuned on.)
The recipe, the rounds and the parameter overrides:
docs/ml.md#the-8-base-models; the splits: docs/ml.md#features-labels-splits-snapshots.

``metrics["rounds"]`` is the rounds the saved model holds: refitting with ``rounds=int(metrics["rounds"])``
and the same parameters repeats the recipe (:mod:`trainfarm.shared.training.deploy` does). Boosted models
also report ``inner_holdout_logloss`` (unweighted, like the other log-losses, of the early-stopped fit on
the inner holdout).

:func:`train_base_model` is what the Celery ``train_base`` task calls (with JSON-parsed arguments); it
returns a :class:`BaseModelResult` whose :meth:`~BaseModelResult.to_json` travels through the broker.
Frames and models never do: they go to files under ``<work_dir>/base/``:

    <model>.<ext>          the model fitted on the whole train split, in its library's own format
    <model>.npz            oof (n_train x 3, NaN outside the validation chunks), calibration, test
    <model>.result.json    the result, written last: its presence means the two files above are complete

(The result is not ``<model>.json``: that is the scikit-learn models' own model file.)

The call is idempotent: when ``<model>.result.json`` exists for this run and the files it names still match
their sha256, the stored result is returned without training, so a redelivered message gives the
identical chord-header result. Anything else (no JSON, other run, a changed or missing file) retrains.

No ML library is imported at module import (see :mod:`trainfarm.shared.zoo`); they load when training starts.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from trainfarm.shared.atomicio import atomic_write, atomic_write_text, sha256_file
from trainfarm.shared.config import SplitParams, TrainingParams
from trainfarm.shared.dataset.labels import class_weights, sample_weights
from trainfarm.shared.dataset.snapshot import DatasetSnapshot
from trainfarm.shared.dataset.splits import Fold, inner_holdout
from trainfarm.shared.errors import ConfigError, DatasetError
from trainfarm.shared.zoo import MODEL_NAMES, Family, ModelSpec, family, get_spec
from trainfarm.shared.zoo.attributions import attributing, mean_abs_by_feature, spread_rows
from trainfarm.shared.zoo.spec import N_CLASSES, Device, EvalSet, FitOptions
from trainfarm_client.arrays import FloatArray, IntArray
from trainfarm_client.featuresets import FeatureSetError

log = logging.getLogger(__name__)

BASE_DIR = "base"
#: The splits whose attributions a boosted base model's predictions file carries.
ATTRIBUTED_SPLITS = ("calibration", "test")
METRIC_KEYS: tuple[str, ...] = ("oof_logloss", "calibration_logloss", "test_logloss", "oof_rows", "rounds")
#: Metrics only the boosted models report.
BOOSTED_METRIC_KEYS: tuple[str, ...] = ("inner_holdout_logloss",)
_STR_FIELDS = (
    "run_id",
    "model",
    "family",
    "device",
    "worker",
    "model_file",
    "model_sha256",
    "predictions_file",
    "predictions_sha256",
)
_SHA_FIELDS = ("model_sha256", "predictions_sha256")
_FILE_FIELDS = ("model_file", "predictions_file")
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class BaseModelResult:
    """What one trained base model reports: small, JSON-safe, and enough to find and verify its files.

    ``model_file`` and ``predictions_file`` are POSIX paths relative to the run's work dir.
    """

    run_id: str
    model: str
    family: str
    device: str
    worker: str
    seconds: float
    model_file: str
    model_sha256: str
    predictions_file: str
    predictions_sha256: str
    metrics: dict[str, float]

    def to_json(self) -> dict[str, object]:
        """A plain dict of str, float and a dict of floats (what the Celery task returns)."""
        data: dict[str, object] = {name: getattr(self, name) for name in _STR_FIELDS}
        data["seconds"] = float(self.seconds)
        data["metrics"] = {key: float(value) for key, value in self.metrics.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> BaseModelResult:
        """Parse :meth:`to_json`'s output; ``ValueError`` naming the first field that is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"base model result must be a JSON object, got {type(data).__name__}")
        expected = {*_STR_FIELDS, "seconds", "metrics"}
        missing, unknown = expected - set(data), set(data) - expected
        if missing or unknown:
            raise ValueError(
                f"base model result has missing keys {sorted(missing)} / unknown keys {sorted(unknown)}"
            )
        strings = {name: _string(data, name) for name in _STR_FIELDS}
        for name in _SHA_FIELDS:
            if len(strings[name]) != 64 or not set(strings[name]) <= _HEX:
                raise ValueError(f"base model result: {name} is not a hex sha256: {strings[name]!r}")
        for name in _FILE_FIELDS:
            rel = Path(strings[name])
            if rel.is_absolute() or ".." in rel.parts:
                raise ValueError(f"base model result: {name} must be relative to the work dir: {rel}")
        seconds = _number(data["seconds"], "seconds")
        raw_metrics = data["metrics"]
        if not isinstance(raw_metrics, Mapping):
            raise ValueError("base model result: metrics must be an object")
        metrics = {str(key): _number(value, f"metrics.{key}") for key, value in raw_metrics.items()}
        absent = [key for key in METRIC_KEYS if key not in metrics]
        if absent:
            raise ValueError(f"base model result: metrics lack {absent}")
        return cls(seconds=seconds, metrics=metrics, **strings)


def _string(data: Mapping[str, object], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"base model result: {name} must be a non-empty string, got {value!r}")
    return value


def _number(value: object, name: str) -> float:
    # bool is an int subclass; a True where a float belongs is a bug upstream, not the number 1.
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ValueError(f"base model result: {name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class _Paths:
    model: Path
    predictions: Path
    result: Path

    @classmethod
    def of(cls, work_dir: Path, spec: ModelSpec) -> _Paths:
        base = work_dir / BASE_DIR
        return cls(
            model=base / f"{spec.name}.{spec.file_ext}",
            predictions=base / f"{spec.name}.npz",
            result=base / f"{spec.name}.result.json",
        )


def result_path(work_dir: Path, model: str) -> Path:
    """Where :func:`train_base_model` stores ``model``'s result JSON in ``work_dir``."""
    return _Paths.of(work_dir, get_spec(model)).result


def reusable_result(work_dir: Path, model: str, run_id: str) -> BaseModelResult | None:
    """``model``'s stored result in ``work_dir`` when it belongs to ``run_id`` and its files are intact.

    What :func:`train_base_model` returns instead of training again (a redelivered task, a resumed replay).
    """
    return _stored_result(work_dir, get_spec(model), run_id)


def _stored_result(work_dir: Path, spec: ModelSpec, run_id: str) -> BaseModelResult | None:
    """The stored result when it belongs to this run and model and its files are intact, else None."""
    paths = _Paths.of(work_dir, spec)
    if not paths.result.is_file():
        return None
    try:
        stored = BaseModelResult.from_json(json.loads(paths.result.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable stored result (%s); retraining", paths.result, exc)
        return None
    expected = (run_id, spec.name, paths.model, paths.predictions)
    found = (stored.run_id, stored.model, work_dir / stored.model_file, work_dir / stored.predictions_file)
    if found != expected:
        log.warning("%s: stored result is for %s/%s; retraining", paths.result, stored.run_id, stored.model)
        return None
    for path, digest in ((paths.model, stored.model_sha256), (paths.predictions, stored.predictions_sha256)):
        if not path.is_file() or sha256_file(path) != digest:
            log.warning("%s is missing or changed since its result was written; retraining", path)
            return None
    return stored


@dataclass(frozen=True, eq=False)
class _Split:
    x: FloatArray
    y: IntArray


def _feature_names(snapshot: DatasetSnapshot) -> tuple[str, ...]:
    """The snapshot's feature columns, refused unless this worker computes the same ones."""
    try:
        names = snapshot.spec().names()
    except FeatureSetError as exc:  # a plugin set not installed on this worker
        raise DatasetError(f"snapshot {snapshot.content_hash[:12]}: {exc}") from exc
    if list(snapshot.feature_names) != list(names):
        raise DatasetError(
            f"snapshot {snapshot.content_hash[:12]} has feature spec {snapshot.feature_spec_version}, "
            "not the features this code computes; rebuild the snapshot"
        )
    return names


def _splits(frame: pl.DataFrame, names: Sequence[str]) -> dict[str, _Split]:
    out: dict[str, _Split] = {}
    for name in ("train", "calibration", "test"):
        part = frame.filter(pl.col("split") == name)  # keeps the snapshot's row order
        x = np.ascontiguousarray(part.select(names).to_numpy(), dtype=np.float64)
        out[name] = _Split(x=x, y=part["label"].to_numpy().astype(np.int64))
    return out


def _class_weights(y: IntArray, model: str, where: str) -> dict[int, float]:
    try:
        return class_weights(y)
    except DatasetError as exc:
        raise DatasetError(f"base model {model}, {where}: {exc}") from exc


def _weights(y: IntArray, model: str, where: str) -> FloatArray:
    return sample_weights(y, _class_weights(y, model, where))


def _logloss(y: IntArray, proba: FloatArray) -> float:
    from sklearn.metrics import log_loss  # lazy: keeps this module free of ML imports

    return float(log_loss(y, proba, labels=list(range(N_CLASSES))))


def write_npz(path: Path, arrays: Mapping[str, FloatArray]) -> None:
    """``np.savez`` with fixed member timestamps, so equal arrays give byte-identical files.

    ``np.savez`` stamps each member with the current time; a retrain after a crash would then report a
    different sha256 for identical predictions. Readable with ``np.load(path, allow_pickle=False)``.
    """
    with path.open("wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def _write_hashed(target: Path, write: Callable[[Path], None]) -> str:
    """Write ``target`` atomically through ``write``; return the sha256 of the bytes written.

    The hash is taken of the temporary file, before the rename, so it describes exactly what this call
    wrote even if a duplicate delivery of the same task replaces ``target`` meanwhile.
    """
    digest: list[str] = []

    def hashed(tmp: Path) -> None:
        write(tmp)
        digest.append(sha256_file(tmp))

    atomic_write(target, hashed)
    return digest[0]


def save_model(fam: Family, model: Any, target: Path) -> tuple[str, Any]:
    """Save ``model`` atomically in its library's format; return (sha256 written, the model read back).

    Predictions come from the model as read back from its file: exactly what a bot loading it computes.
    """
    reloaded: list[Any] = []

    def save_and_reload(tmp: Path) -> None:
        fam.save(model, tmp)
        reloaded.append(fam.load(tmp))

    digest = _write_hashed(target, save_and_reload)
    return digest, reloaded[0]


@dataclass(frozen=True, eq=False)
class Fitter:
    """The fits of one model in one run: everything but the rows and the rounds is fixed (also used to
    refit the deployed models, :mod:`trainfarm.shared.training.deploy`)."""

    spec: ModelSpec
    fam: Family
    training: TrainingParams
    threads: int
    device: Device

    def fit(
        self, x: FloatArray, y: IntArray, where: str, *, rounds: int, eval_set: EvalSet | None = None
    ) -> Any:
        """Fit on ``x``, ``y`` with class weights from ``y``; early-stop on ``eval_set`` when given."""
        options = FitOptions(
            rounds=rounds,
            learning_rate=self.training.learning_rate,
            seed=self.training.seed,
            threads=self.threads,
            device=self.device,
            overrides=self.training.model_params.get(self.spec.name, {}),
            early_stopping_rounds=self.training.early_stopping_rounds if eval_set is not None else None,
        )
        weights = _weights(y, self.spec.name, where)
        return self.fam.fit(self.spec, x, y, weights, options, eval_set=eval_set)

    def early_stopped(self, x: FloatArray, y: IntArray, holdout: Fold, where: str) -> Any:
        """Fit on ``holdout.train_idx`` of ``x``, early-stopping on ``holdout.valid_idx`` (the model holds
        the rounds up to the best one)."""
        fit_y, held_y = y[holdout.train_idx], y[holdout.valid_idx]
        # The holdout is weighted like the fit's rows: the log-loss early stopping watches is the one the
        # weighted fit minimises.
        held_w = sample_weights(held_y, _class_weights(fit_y, self.spec.name, where))
        return self.fit(
            x[holdout.train_idx],
            fit_y,
            where,
            rounds=self.training.base_rounds,
            eval_set=(x[holdout.valid_idx], held_y, held_w),
        )

    def choose_rounds(self, x: FloatArray, y: IntArray, holdout: Fold) -> tuple[int, float]:
        """Early-stop on the inner holdout: (the best round, at least 1; the holdout's log-loss there)."""
        probe = self.early_stopped(x, y, holdout, "fit before the inner holdout")
        rounds = max(1, self.fam.best_rounds(probe))
        held = holdout.valid_idx
        return rounds, _logloss(y[held], self.fam.predict_proba(probe, x[held], threads=self.threads))


def _attributions(
    spec: ModelSpec, model: Any, data: Mapping[str, _Split], names: Sequence[str], threads: int
) -> dict[str, FloatArray]:
    """``attributions_<split>``: the saved model's mean absolute attribution per feature (the snapshot's
    ``feature_names`` order) on the calibration and test splits; none for a model without exact
    attributions. They travel in the predictions file (hashed, verified by the meta stage), not in the
    result the broker carries."""
    explained = attributing(spec)
    if explained is None:
        return {}
    out = {}
    for split in ATTRIBUTED_SPLITS:
        contributions = explained.contributions(model, spread_rows(data[split].x), threads=threads)
        means = mean_abs_by_feature(contributions, names)
        out[f"attributions_{split}"] = np.array([means[name] for name in names])
    return out


def train_base_model(
    snapshot: DatasetSnapshot,
    model: str,
    work_dir: Path,
    *,
    run_id: str,
    training: TrainingParams,
    splits: SplitParams,
    threads: int,
    device: str = "cpu",
    worker: str | None = None,
) -> BaseModelResult:
    """Train ``model`` on ``snapshot`` for run ``run_id``, write its files, return its result.

    A boosted model's rounds are chosen first, by early stopping on the purged inner holdout (see the
    module docstring). Out-of-fold probabilities come from purged walk-forward folds over the train split
    (each fold's class weights from its own training rows); the final model is fitted on the whole train
    split and, read back from its file, predicts the calibration and test splits; folds and final fit use
    the same rounds. ``device`` is what the worker
    offers ("cpu" or "cuda"); a model without GPU support uses the CPU and the result says so.
    Raises :class:`ConfigError` for an unknown model (also in ``training.model_params``),
    :class:`DatasetError` when a class is absent from a fold's training rows, and the library's own
    error (``LightGBMError``, ``XGBoostError``, ``CatBoostError``, sklearn's) for a parameter it rejects.
    """
    spec = get_spec(model)
    used_device = spec.effective_device(device)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    unknown = sorted(set(training.model_params) - set(MODEL_NAMES))
    if unknown:
        # A misspelt model name would otherwise leave its overrides silently unapplied in every run.
        raise ConfigError(
            f"training.model_params names unknown models {unknown}; valid: {', '.join(MODEL_NAMES)}"
        )
    stored = _stored_result(work_dir, spec, run_id)
    if stored is not None:
        log.info("run %s: %s already trained, reusing %s", run_id, model, stored.model_file)
        return stored

    # The libraries get ``threads`` explicitly; NumPy's BLAS and OpenMP runtimes would otherwise size
    # their pools to the whole machine and oversubscribe a worker slot (see meta_stage.finish_version).
    with threadpool_limits(limits=threads):
        started = time.perf_counter()
        frame = snapshot.frame()  # verifies the file's sha256
        names = _feature_names(snapshot)
        data = _splits(frame, names)
        train = data["train"]
        folds = snapshot.folds(
            frame,
            n_folds=splits.oof_folds,
            min_train_rows=splits.min_fold_train_rows,
            min_train_share=splits.oof_min_train_share,
        )
        fam = family(spec)
        fitter = Fitter(spec=spec, fam=fam, training=training, threads=threads, device=used_device)
        rounds = training.base_rounds
        holdout_metrics: dict[str, float] = {}
        times = frame.filter(pl.col("split") == "train").select("date", "label_end")

        def tail_of(rows: pl.DataFrame) -> Fold:
            """The purged inner holdout at the end of ``rows`` (train rows, in time order)."""
            return inner_holdout(
                rows["date"],
                rows["label_end"],
                fraction=training.inner_holdout_fraction,
                min_train_rows=splits.min_fold_train_rows,
            )

        if spec.boosted:
            holdout = tail_of(times)
            rounds, holdout_metrics["inner_holdout_logloss"] = fitter.choose_rounds(train.x, train.y, holdout)
            log.info(
                "run %s: %s early-stopped at %d of %d rounds on %d inner-holdout rows",
                run_id,
                model,
                rounds,
                training.base_rounds,
                holdout.valid_idx.size,
            )

        oof = np.full((train.y.size, N_CLASSES), np.nan)
        for fold in folds:
            where = f"fold {fold.index + 1} of {len(folds)}"
            fx, fy = train.x[fold.train_idx], train.y[fold.train_idx]
            if spec.boosted:
                # The run's inner holdout is the end of train, inside the out-of-fold region: rounds chosen
                # there would be tuned on rows these fold models predict. Each fold early-stops on the
                # purged tail of its own training rows instead, and predicts with that fit.
                tail = tail_of(times[fold.train_idx])
                fitted = fitter.early_stopped(fx, fy, tail, f"{where}, before its own holdout")
            else:
                fitted = fitter.fit(fx, fy, where, rounds=rounds)
            oof[fold.valid_idx] = fam.predict_proba(fitted, train.x[fold.valid_idx], threads=threads)
        final = fitter.fit(train.x, train.y, "final fit on the train split", rounds=rounds)
        # What the saved model holds (an override of the library's rounds parameter wins over ``rounds``).
        final_rounds = fam.best_rounds(final) if spec.boosted else training.base_rounds

        paths = _Paths.of(work_dir, spec)
        model_sha, saved = save_model(fam, final, paths.model)
        # Predict with the model as read back from its file: exactly what a bot loading the artifact computes.
        predictions = {
            "oof": oof,
            "calibration": fam.predict_proba(saved, data["calibration"].x, threads=threads),
            "test": fam.predict_proba(saved, data["test"].x, threads=threads),
            **_attributions(spec, saved, data, names, threads),
        }
        predictions_sha = _write_hashed(paths.predictions, lambda tmp: write_npz(tmp, predictions))
        scored = ~np.isnan(oof).any(axis=1)
        result = BaseModelResult(
            run_id=run_id,
            model=model,
            family=spec.family,
            device=used_device,
            worker=worker or socket.gethostname(),
            seconds=time.perf_counter() - started,
            model_file=paths.model.relative_to(work_dir).as_posix(),
            model_sha256=model_sha,
            predictions_file=paths.predictions.relative_to(work_dir).as_posix(),
            predictions_sha256=predictions_sha,
            metrics={
                "oof_logloss": _logloss(train.y[scored], oof[scored]),
                "calibration_logloss": _logloss(data["calibration"].y, predictions["calibration"]),
                "test_logloss": _logloss(data["test"].y, predictions["test"]),
                "oof_rows": float(scored.sum()),
                "rounds": float(final_rounds),
                **holdout_metrics,
            },
        )
        # Written last: a result file on disk always names complete files.
        atomic_write_text(paths.result, json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
        return result
