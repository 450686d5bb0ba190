"""The meta stage: stack base-model probabilities, train the meta-learner, calibrate.

* :mod:`trainfarm.shared.stacking.layout` -- the 55 meta-features (re-exported from
  :mod:`trainfarm_client.stacking`);
* :mod:`trainfarm.shared.stacking.learner` -- the LightGBM meta-learner with time-ordered early stopping;
* :mod:`trainfarm.shared.stacking.isotonic` -- per-class isotonic calibration, stored as JSON thresholds.

Import the submodules directly: this package re-exports nothing, so a process that only needs the
numpy-only parts (stacking, a loaded calibrator) does not pay for importing LightGBM.
"""
