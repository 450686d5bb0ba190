"""The client's errors: what their messages say."""

from __future__ import annotations

from trainfarm_client.errors import BarsError


def test_a_bars_error_names_its_column() -> None:
    assert str(BarsError("must be a datetime", column="date")) == "column 'date': must be a datetime"
