"""Replay: the farm run over its own history, policy against policy (docs/replay.md).

A simulated clock steps through retrain points; each point trains through the farm's own stages on the
bars closed by then; the gated policy decides promotions in time order with the farm's own gates; four
policies (gated, always, static, prior) then score the same bars, bar by bar, as a bot would.
"""
