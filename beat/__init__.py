"""Beat side of trainfarm: the schedule built from the universe config and the retrain trigger policies.

Filled in with the scheduling stage; the universe and per-timeframe cadences it will read already live in
``trainfarm.shared.config``.
"""
