"""The base of every table of the config file (``farm.toml``): :class:`ConfigTable`.

The tables live beside what reads them (the gates' thresholds in
:mod:`trainfarm.shared.evaluation.gate_params`, the alerts' in
:mod:`trainfarm.shared.monitoring.alert_params`, ...); :mod:`trainfarm.shared.config` puts them together
into the file's one model.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: A share strictly between 0 and 1.
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class ConfigTable(BaseModel):
    """A table of the config file: unknown keys refused, values frozen once read."""

    # Unknown keys are typos; refusing them beats silently training with a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


__all__ = ["ConfigTable", "Fraction"]
