"""What a version's models relied on, as its manifest records it (``attributions``): per evaluated boosted
base model, the mean absolute attribution of each feature on the calibration and test splits; and the
stacked model's permutation importance per base model on the calibration split. Packs written before
attributions existed have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attributions:
    """A manifest's attributions, with the rankings the version page and `farm models` show."""

    base_models: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    stacker_permutation: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of_manifest(cls, manifest: Mapping[str, object]) -> Attributions | None:
        """The manifest's attributions, or None when it has none (or they are not what a run writes)."""
        raw = manifest.get("attributions")
        if not isinstance(raw, Mapping):
            return None
        base, stacker = raw.get("base_models", {}), raw.get("stacker_permutation", {})
        try:
            return cls(
                base_models={
                    str(m): {
                        str(s): {str(f): float(v) for f, v in means.items()} for s, means in splits.items()
                    }
                    for m, splits in base.items()
                },
                stacker_permutation={str(m): float(v) for m, v in stacker.items()},
            )
        except (AttributeError, TypeError, ValueError):
            return None

    def top_features(self, split: str = "test", limit: int = 15) -> list[tuple[str, float]]:
        """Features by their mean attribution over the explained models on ``split``, largest first.

        Each model's attributions are first scaled to sum to 1, so a model with larger margins does not
        outweigh the others."""
        totals: dict[str, float] = {}
        shares = [means for splits in self.base_models.values() if (means := splits.get(split))]
        for means in shares:
            whole = sum(means.values()) or 1.0
            for name, value in means.items():
                totals[name] = totals.get(name, 0.0) + value / whole / len(shares)
        return sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:limit]

    def stacker_ranking(self) -> list[tuple[str, float]]:
        """Base models by the stacker's permutation importance, largest first."""
        return sorted(self.stacker_permutation.items(), key=lambda item: (-item[1], item[0]))

    def to_json(self) -> dict[str, object]:
        """What `farm models --json` prints under ``attributions``."""
        return {
            "base_models": self.base_models,
            "stacker_permutation": self.stacker_permutation,
            "top_features_test": [{"feature": f, "share": s} for f, s in self.top_features()],
        }
