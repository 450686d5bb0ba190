"""What a base model is: a declaration (:class:`ModelSpec`) and the interface every family implements.

A family module (``trainfarm.shared.zoo.<family>_family``) wraps one library behind six functions, so the
training code never branches on the library: :func:`build_params` (the exact library parameters a fit would
use, testable without training or a GPU), ``fit``, ``best_rounds``, ``predict_proba``, ``save`` and ``load``.
The modules are plain modules, typed against :class:`Family`.

The boosting families (:data:`BOOSTING_FAMILIES`) can early-stop: ``fit`` with an ``eval_set`` and
``early_stopping_rounds`` trains at most ``rounds`` rounds, stops when the weighted multiclass log-loss on
the eval set has not improved for ``early_stopping_rounds`` rounds, and returns a model that holds only the
rounds up to the best one; ``best_rounds`` reads that count back. The sklearn family has no rounds to choose
and refuses an eval set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

from trainfarm.shared.config import ParamValue
from trainfarm_client.arrays import FloatArray, IntArray

# One implementation, in the bot client (its model predictors use it); the families import it from here.
from trainfarm_client.probs import normalise_proba as normalise_proba  # noqa: PLC0414 - explicit re-export

FamilyName = Literal["lightgbm", "xgboost", "catboost", "sklearn"]
Device = Literal["cpu", "cuda"]

FAMILIES: tuple[FamilyName, ...] = ("lightgbm", "xgboost", "catboost", "sklearn")
#: Families whose number of rounds is chosen by early stopping (see the module docstring).
BOOSTING_FAMILIES: tuple[FamilyName, ...] = ("lightgbm", "xgboost", "catboost")
DEVICES: tuple[Device, ...] = ("cpu", "cuda")
N_CLASSES = 3

#: Each library's own file format (the artifact pack stores base models in these, never as pickles).
_FILE_EXT: dict[FamilyName, str] = {
    "lightgbm": "txt",  # Booster.save_model text
    "xgboost": "ubj",  # UBJSON
    "catboost": "cbm",  # CatBoost binary model
    "sklearn": "json",  # fitted arrays as JSON, read back by a small numpy predictor
}

Params = dict[str, ParamValue]
#: An early-stopping evaluation set: features, labels and per-row weights, like a fit's.
EvalSet = tuple[FloatArray, IntArray, FloatArray]


def _frozen(mapping: Mapping[str, ParamValue]) -> Mapping[str, ParamValue]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class FitOptions:
    """How one fit runs, besides its rows: what :meth:`Family.build_params` and :meth:`Family.fit` take.

    ``rounds`` is the most boosting rounds (the MLP's epochs); ``threads`` and ``device`` come from the
    worker, the rest from the config (``overrides``: ``[training.model_params.<model>]``). With
    ``early_stopping_rounds``, ``fit`` early-stops on its ``eval_set`` (boosting families only).
    """

    rounds: int
    learning_rate: float
    seed: int
    threads: int
    device: Device
    overrides: Mapping[str, ParamValue] = field(default_factory=dict)
    early_stopping_rounds: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", _frozen(self.overrides))


@dataclass(frozen=True)
class ModelSpec:
    """One base model, declared once in :data:`trainfarm.shared.zoo.ZOO`.

    ``params`` are the library parameters that make this model what it is (depth, grow policy, ...);
    rounds, learning rate, seed and threads come from the config and the worker at fit time.
    ``gpu_params`` are applied on top when the model runs on a GPU worker (``device="cuda"``).
    """

    name: str
    family: FamilyName
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    gpu_capable: bool = False
    gpu_params: Mapping[str, ParamValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(
                f"model {self.name!r}: unknown family {self.family!r}; expected one of {FAMILIES}"
            )
        if self.gpu_params and not self.gpu_capable:
            raise ValueError(f"model {self.name!r} has gpu_params but is not gpu_capable")
        # Read-only views: a spec is shared by every run in the process, so nobody may edit it in place.
        object.__setattr__(self, "params", _frozen(self.params))
        object.__setattr__(self, "gpu_params", _frozen(self.gpu_params))

    @property
    def boosted(self) -> bool:
        """Whether this model's rounds are chosen by early stopping (a boosting family)."""
        return self.family in BOOSTING_FAMILIES

    @property
    def file_ext(self) -> str:
        """Extension of the saved model file (the library's own format)."""
        return _FILE_EXT[self.family]

    def effective_device(self, device: str) -> Device:
        """The device this model really trains on when a worker offers ``device``.

        A model without GPU support trains on the CPU even on a GPU worker (a GPU worker may also serve
        the cpu queue); the result records the device actually used.
        """
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
        return "cuda" if device == "cuda" and self.gpu_capable else "cpu"


class Family(Protocol):
    """The interface of a family module (``trainfarm.shared.zoo.<family>_family``)."""

    def build_params(self, spec: ModelSpec, options: FitOptions) -> Params:
        """The exact library parameters a fit uses: family defaults, spec, device, then overrides."""
        ...

    def fit(
        self,
        spec: ModelSpec,
        x: FloatArray,
        y: IntArray,
        sample_weight: FloatArray,
        options: FitOptions,
        *,
        eval_set: EvalSet | None = None,
    ) -> Any:
        """Train on ``x`` (float64, n x features), ``y`` (0/1/2) with per-row weights; return the model.

        With ``eval_set`` and ``options.early_stopping_rounds`` (both or neither), early-stop on the eval
        set's weighted log-loss and keep only the rounds up to the best one (boosting families only).
        """
        ...

    def best_rounds(self, model: Any) -> int:
        """The rounds ``model`` holds: after an early-stopped fit, the best round (1-based); 0 for sklearn."""
        ...

    def predict_proba(self, model: Any, x: FloatArray, *, threads: int | None = None) -> FloatArray:
        """Class probabilities, n x 3 float64, rows summing to 1."""
        ...

    def save(self, model: Any, path: Path) -> None:
        """Write ``model`` to ``path`` in the library's own format (whatever ``path``'s suffix)."""
        ...

    def load(self, path: Path) -> Any:
        """Read a model written by :meth:`save`; needs nothing but the file."""
        ...


def check_fit_inputs(x: FloatArray, y: IntArray, sample_weight: FloatArray) -> None:
    """Refuse shapes that libraries would misread silently (a transposed x, a short weight vector)."""
    if x.ndim != 2 or y.ndim != 1 or sample_weight.ndim != 1:
        raise ValueError(f"need 2-d X and 1-d y/weights, got {x.shape}, {y.shape}, {sample_weight.shape}")
    if not x.shape[0] == y.shape[0] == sample_weight.shape[0]:
        raise ValueError(f"x, y and weights differ in rows: {x.shape[0]}, {y.shape[0]}, {sample_weight.size}")


def check_eval_set(
    x: FloatArray, eval_set: EvalSet | None, early_stopping_rounds: int | None
) -> tuple[EvalSet, int] | None:
    """The eval set and patience when early stopping is asked for, checked like a fit's inputs; else None.

    ``ValueError`` when only one of ``eval_set`` and ``early_stopping_rounds`` is given, when the patience
    is below 1, or when the eval set's shapes are wrong or its columns are not ``x``'s.
    """
    if eval_set is None and early_stopping_rounds is None:
        return None
    if eval_set is None or early_stopping_rounds is None:
        raise ValueError("early stopping needs both eval_set and early_stopping_rounds")
    if early_stopping_rounds < 1:
        raise ValueError(f"early_stopping_rounds must be at least 1, got {early_stopping_rounds}")
    x_eval, y_eval, w_eval = eval_set
    check_fit_inputs(x_eval, y_eval, w_eval)
    if x_eval.shape[1] != x.shape[1]:
        raise ValueError(f"eval_set has {x_eval.shape[1]} columns, the training rows {x.shape[1]}")
    if x_eval.shape[0] == 0:
        raise ValueError("eval_set is empty")
    return eval_set, early_stopping_rounds


def merge_params(*layers: Mapping[str, ParamValue]) -> Params:
    """Later layers win: family defaults < spec params < device params < config overrides."""
    merged: Params = {}
    for layer in layers:
        merged.update(layer)
    return merged
