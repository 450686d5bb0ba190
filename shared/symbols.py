"""Canonical symbol ids.

``BTC/USDT``, ``BTC_USDT``, ``btc-usdt`` and ``btc_usdt`` all name one market, whose canonical id is
``BTC_USDT``: upper case, base and quote joined by one underscore. The id is safe as a folder name, a Redis
key part and a CLI argument, because it may only contain ``A-Z``, ``0-9`` and that single underscore, so a
symbol can never climb out of the store folder (``../x``) or inject a Redis key separator (``:``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from trainfarm.shared.errors import SymbolError

_PART = r"[A-Z0-9]{1,20}"
_CANONICAL = re.compile(rf"^{_PART}(?:_{_PART})?$")
#: Separators people use between base and quote (ccxt uses "/", freqtrade files use "_").
_SEPARATORS = re.compile(r"[/_\-]")


def canonical_symbol(text: str) -> str:
    """Return the canonical id for ``text`` or raise :class:`SymbolError` naming the problem."""
    if not isinstance(text, str) or not text.strip():
        raise SymbolError("empty symbol; write it like BTC/USDT or BTC_USDT")
    raw = text.strip()
    # Futures pairs in ccxt look like BTC/USDT:USDT; the settle currency is dropped, the pair kept.
    if raw.count(":") == 1 and "/" in raw:
        raw = raw.split(":", 1)[0]
    parts = _SEPARATORS.split(raw.upper())
    candidate = "_".join(parts)
    if len(parts) > 2 or not _CANONICAL.fullmatch(candidate):
        raise SymbolError(
            f"invalid symbol {text!r}: use letters and digits, optionally BASE/QUOTE "
            "(for example BTC/USDT or BTC_USDT)"
        )
    return candidate


def display_symbol(symbol_id: str) -> str:
    """Human spelling of a canonical id: ``BTC_USDT`` -> ``BTC/USDT``."""
    return symbol_id.replace("_", "/")


def _symbol_id(value: str) -> str:
    try:
        return canonical_symbol(value)
    except SymbolError as exc:  # as a ValueError, so pydantic's message names the key
        raise ValueError(str(exc)) from None


#: A symbol field: text in any spelling :func:`canonical_symbol` accepts, validated into the canonical id
#: (after the field's own string constraints, e.g. a ``max_length``).
SymbolId = Annotated[str, AfterValidator(_symbol_id)]
