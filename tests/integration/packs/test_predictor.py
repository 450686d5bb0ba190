"""The predictor rebuilds a pack from its files alone, verifies them, and reproduces the pack's own outputs.

The pack (``pack`` in ``tests/conftest.py``) is built once per session through the same steps as a
run (snapshot -> 8 base models -> meta stage), with the small config on the BTC sample at 12h; no Redis or
registry is involved here.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tests.support.packs import PACK_TF, Pack
from trainfarm.shared.dataset.features import FEATURE_NAMES, add_features
from trainfarm.shared.errors import ArtifactError
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.stacking.learner import MetaModel
from trainfarm.shared.training.meta_stage import SAMPLE_ROWS
from trainfarm.shared.zoo import MODEL_NAMES

PROBS = ["p_down", "p_neutral", "p_up"]


@pytest.fixture(scope="module")
def predictor(pack: Pack) -> Predictor:
    return Predictor.load(pack.path, expected_manifest_sha256=pack.manifest_sha256)


def _rewrite_manifest(path: Path, **changes: Any) -> None:
    body = json.loads((path / "manifest.json").read_text())
    body.update(changes)
    (path / "manifest.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")


def _assert_probabilities(probs: np.ndarray[Any, Any], rows: int) -> None:
    assert probs.shape == (rows, 3) and probs.dtype == np.float64
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-9)


# --- predictions ---------------------------------------------------------------------------------------


def test_predict_features_gives_probability_rows(predictor: Predictor, pack: Pack) -> None:
    test = pack.snapshot.frame().filter(pl.col("split") == "test").select(FEATURE_NAMES).to_numpy()
    _assert_probabilities(predictor.predict_features(test), test.shape[0])
    _assert_probabilities(predictor.predict_features(test[:1]), 1)
    predictor.self_check()
    with pytest.raises(ValueError, match=str(len(FEATURE_NAMES))):
        predictor.predict_features(test[:, :-1])


def test_predict_bars_covers_the_newest_bars(predictor: Predictor, pack: Pack) -> None:
    out = predictor.predict_bars(pack.bars)
    assert out.columns == ["date", *PROBS]
    # Bars past the snapshot's last labelled row (no label yet) are exactly the ones a bot trades on.
    assert out["date"][-1] == pack.bars["date"][-1]
    assert out["date"][-1].isoformat() > pack.snapshot.last_bar
    assert out["date"].is_sorted() and set(out["date"]) <= set(pack.bars["date"])
    assert out.height > pack.snapshot.rows
    _assert_probabilities(out.select(PROBS).to_numpy(), out.height)


def test_too_short_a_history_gives_no_rows_not_an_error(predictor: Predictor, pack: Pack) -> None:
    """A bot starting with fewer bars than the features' warm-up gets an empty answer, not a crash."""
    out = predictor.predict_bars(pack.bars.head(10))
    assert out.columns == ["date", *PROBS] and out.height == 0
    assert predictor.predict_features(np.empty((0, len(FEATURE_NAMES)))).shape == (0, 3)


def test_predict_bars_reproduces_the_stored_sample_outputs(predictor: Predictor, pack: Pack) -> None:
    """The manifest's sample rows are the last test rows; found again by recomputing features from bars.

    Features are causal and computed over the whole history with the training code, so the rows match
    exactly (asserted to 1e-9) and so do the probabilities.
    """
    sample = predictor.manifest["sample_rows"]
    sample_x = np.asarray(sample["features"], dtype=np.float64)
    expected = np.asarray(sample["expected"], dtype=np.float64)
    assert sample_x.shape == (SAMPLE_ROWS, len(FEATURE_NAMES)) and expected.shape == (SAMPLE_ROWS, 3)

    params = predictor.manifest["feature_params"]
    features = add_features(
        pack.bars, interval=PACK_TF.duration, max_gap_bars=int(params["max_gap_bars"])
    ).drop_nulls(list(FEATURE_NAMES))
    all_x = features.select(FEATURE_NAMES).to_numpy()
    dates = []
    for row in sample_x:
        distance = np.abs(all_x - row).max(axis=1)
        [match] = np.flatnonzero(distance <= 1e-9)  # exactly one bar has these features
        dates.append(features["date"][int(match)])
    test_dates = pack.snapshot.frame().filter(pl.col("split") == "test")["date"]
    assert dates == test_dates.tail(SAMPLE_ROWS).to_list()

    out = predictor.predict_bars(pack.bars).filter(pl.col("date").is_in(dates)).sort("date")
    assert out["date"].to_list() == dates
    np.testing.assert_allclose(out.select(PROBS).to_numpy(), expected, rtol=0, atol=1e-9)


# --- verification --------------------------------------------------------------------------------------


def _pack_files(pack: Pack) -> list[str]:
    manifest = json.loads((pack.path / "manifest.json").read_text())
    return sorted(manifest["files"])


@pytest.mark.parametrize(
    "rel", ["base/xgb_hist.ubj", "base/lgbm_gbdt.txt", "base/sk_mlp.json", "calibrator.json"]
)
def test_a_tampered_model_file_is_refused_by_name(copied: Path, pack: Pack, rel: str) -> None:
    assert rel in _pack_files(pack)
    data = bytearray((copied / rel).read_bytes())
    data[len(data) // 2] ^= 0x20
    (copied / rel).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=re.escape(rel)):
        Predictor.load(copied, expected_manifest_sha256=pack.manifest_sha256)
    with pytest.raises(ArtifactError, match=re.escape(rel)):
        Predictor.load(copied)


def test_every_base_model_file_is_checked(copied: Path, pack: Pack) -> None:
    base_files = [f for f in _pack_files(pack) if f.startswith("base/")]
    assert len(base_files) == len(MODEL_NAMES)
    for rel in base_files:
        original = (copied / rel).read_bytes()
        (copied / rel).write_bytes(original + b"\n")
        with pytest.raises(ArtifactError, match=re.escape(rel)):
            Predictor.load(copied)
        (copied / rel).write_bytes(original)
    Predictor.load(copied).self_check()


def test_a_changed_feature_spec_version_is_refused(copied: Path, pack: Pack) -> None:
    manifest = json.loads((copied / "manifest.json").read_text())
    _rewrite_manifest(copied, feature_spec_version=f"{manifest['feature_spec_version']}-changed")
    with pytest.raises(ArtifactError, match="sha256"):  # the registered manifest is another one
        Predictor.load(copied, expected_manifest_sha256=pack.manifest_sha256)
    # and it no longer says the core set's version the spec names
    with pytest.raises(ArtifactError, match="feature_spec_version '1-changed' is not its core set's"):
        Predictor.load(copied)
    # A pack of another core version altogether: this code computes other features.
    manifest["feature_spec_version"] = "2"
    manifest["features"]["sets"][0]["version"] = "2"
    _rewrite_manifest(copied, feature_spec_version="2", features=manifest["features"])
    with pytest.raises(ArtifactError, match="'core' version '2' is needed, this environment has '1'"):
        Predictor.load(copied)


def test_a_model_file_outside_the_verified_listing_is_refused(copied: Path) -> None:
    """The manifest's model entries may only point at files whose sha256 read_manifest checked."""
    manifest = json.loads((copied / "manifest.json").read_text())
    shutil.copyfile(copied / "base" / "lgbm_gbdt.txt", copied / "base" / "unlisted.txt")
    entries = manifest["base_models"]
    entries[0]["file"] = "base/unlisted.txt"
    _rewrite_manifest(copied, base_models=entries)
    with pytest.raises(ArtifactError, match=re.escape("base/unlisted.txt")):
        Predictor.load(copied)

    entries[0]["file"] = "base/lgbm_gbdt.txt"
    entries[0]["sha256"] = "0" * 64
    _rewrite_manifest(copied, base_models=entries)
    with pytest.raises(ArtifactError, match=re.escape("base/lgbm_gbdt.txt")):
        Predictor.load(copied)


def test_an_unknown_model_kind_is_refused(copied: Path) -> None:
    manifest = json.loads((copied / "manifest.json").read_text())
    manifest["base_models"][2]["kind"] = "os"
    _rewrite_manifest(copied, base_models=manifest["base_models"])
    with pytest.raises(ArtifactError, match="'os'"):
        Predictor.load(copied)


def test_loading_and_predicting_never_unpickles(
    pack: Pack, predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object, **__: object) -> object:
        raise AssertionError("something unpickled while loading a pack")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    try:
        import joblib  # type: ignore[import-untyped]

        monkeypatch.setattr(joblib, "load", refuse)
    except ImportError:  # pragma: no cover - joblib comes with scikit-learn
        pass
    loaded = Predictor.load(pack.path, expected_manifest_sha256=pack.manifest_sha256)
    loaded.self_check()
    out = loaded.predict_bars(pack.bars.tail(200))
    np.testing.assert_array_equal(
        out.select(PROBS).to_numpy(), predictor.predict_bars(pack.bars.tail(200)).select(PROBS).to_numpy()
    )


def _rewrite_manifest(pack_dir: Path, **changes: Any) -> None:
    """Change manifest keys in place (the files' hashes stay valid; the manifest's own hash does not)."""
    path = pack_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    path.write_text(json.dumps(manifest))


def test_a_pack_of_a_newer_format_is_refused_naming_both_formats(copied: Path) -> None:
    _rewrite_manifest(copied, format_version=3)
    with pytest.raises(ArtifactError, match=r"pack format 3 is newer than this client reads \(up to 2\)"):
        Predictor.load(copied)


def test_a_format_1_pack_still_loads_and_predicts_through_its_meta_learner(copied: Path, pack: Pack) -> None:
    """Packs written before format 2: a 55-feature LightGBM meta-learner and isotonic calibration."""
    from trainfarm.shared.stacking.isotonic import IsotonicCalibrator
    from trainfarm.shared.stacking.layout import meta_feature_names, stack_features
    from trainfarm_client.calibration import IsotonicCalibration

    rng = np.random.default_rng(11)
    names = meta_feature_names(list(MODEL_NAMES))
    meta = _booster(rng, names)
    calibrator = IsotonicCalibrator().fit(rng.dirichlet([1, 1, 1], 300), rng.integers(0, 3, 300))
    (copied / "meta").mkdir()
    (copied / "meta" / "meta.txt").write_text(meta.to_text())
    (copied / "calibrator.json").write_text(json.dumps(calibrator.to_json()))
    manifest = json.loads((copied / "manifest.json").read_text())
    files = dict(manifest["files"])
    for rel in ("meta/meta.txt", "calibrator.json"):
        files[rel] = _sha256(copied / rel)
    _rewrite_manifest(
        copied,
        format_version=None,
        stacker=None,
        meta={"file": "meta/meta.txt", "kind": "lightgbm", "feature_names": names},
        calibrator={"file": "calibrator.json", "kind": "isotonic-per-class-renormalised"},
        files=files,
    )
    old = Predictor.load(copied)
    current = Predictor.load(pack.path, expected_manifest_sha256=pack.manifest_sha256)
    rows = np.asarray(manifest["sample_rows"]["features"], dtype=np.float64)
    base = [b.predict_proba(rows) for b in current._bases]
    expected = IsotonicCalibration.from_json(calibrator.to_json()).transform(
        meta.predict_proba(stack_features(base, list(MODEL_NAMES)))
    )
    np.testing.assert_allclose(old.predict_features(rows), expected, atol=1e-12)


def test_a_chosen_lightgbm_stacker_loads_checks_its_feature_names_and_predicts(
    copied: Path, pack: Pack
) -> None:
    """The stacker a run writes when LightGBM wins: stacker/booster.txt, its 55 feature names checked."""
    from trainfarm.shared.stacking.layout import meta_feature_names
    from trainfarm.shared.stacking.selection import FittedBooster
    from trainfarm.shared.training.meta_stage import STACKER_BOOSTER
    from trainfarm_client.calibration import load_calibration

    names = meta_feature_names(list(MODEL_NAMES))

    def install(booster_text: str) -> None:
        (copied / "stacker").mkdir(exist_ok=True)
        (copied / STACKER_BOOSTER).write_text(booster_text)
        files = json.loads((copied / "manifest.json").read_text())["files"]
        files[STACKER_BOOSTER] = _sha256(copied / STACKER_BOOSTER)
        entry = {"kind": "lightgbm", "file": STACKER_BOOSTER, "feature_names": names}
        _rewrite_manifest(copied, stacker=entry, files=files)

    booster = _booster(np.random.default_rng(12), names)
    install(booster.to_text())
    loaded = Predictor.load(copied)
    current = Predictor.load(pack.path, expected_manifest_sha256=pack.manifest_sha256)
    rows = np.asarray(current.manifest["sample_rows"]["features"], dtype=np.float64)
    base = {b.name: b.predict_proba(rows) for b in current._bases}
    calibration = load_calibration(json.loads((copied / "calibrator.json").read_text()))
    expected = calibration.transform(FittedBooster(booster, MODEL_NAMES).predict(base, rows.shape[0]))
    np.testing.assert_allclose(loaded.predict_features(rows), expected, atol=1e-12)
    # A booster trained on other columns is refused at load, naming the layout.
    install(_booster(np.random.default_rng(13), [f"f{i}" for i in range(len(names))]).to_text())
    with pytest.raises(ArtifactError, match="feature names differ from the 55-feature layout"):
        Predictor.load(copied)


def _booster(rng: np.random.Generator, names: list[str]) -> MetaModel:
    """A small 55-feature, 3-class LightGBM stacker on random rows (what matters here is its file)."""
    from trainfarm.shared.stacking.learner import fit_meta

    x, y = rng.random((300, len(names))), rng.integers(0, 3, 300)
    return fit_meta(
        x, y, np.ones(300), rounds=20, learning_rate=0.1, early_stopping_rounds=5,
        holdout_fraction=0.2, threads=1, seed=1, feature_names=names,
    )  # fmt: skip


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
