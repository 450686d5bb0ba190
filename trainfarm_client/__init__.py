"""trainfarm's bot client: load, verify and hot-reload the champion model of a (symbol, timeframe).

Bots embed this package; it depends only on what a bot needs (numpy, polars, redis and the model
libraries), never on the farm's Celery, database or CLI code, and it never imports the farm's ``shared``
package (the farm imports the client instead: features, stacking, calibration and model loading have
one implementation, here). Importing it loads no model library: each is imported when a pack needs it.

Modules:

* :mod:`trainfarm_client.predictor` -- ``Predictor.load(pack)``, ``predict_bars``, ``self_check``,
  ``decide`` (the trading rule with the pack's p*);
* :mod:`trainfarm_client.features` -- the causal features, the same code training used;
* :mod:`trainfarm_client.contract` -- the Redis keys and channels shared with the farm;
* :mod:`trainfarm_client.errors` -- ``ClientError`` and its children, each saying who handles it;
* :mod:`trainfarm_client.pack`, ``models``, ``numpy_models``, ``stacking``, ``calibration``, ``probs``
  -- the pieces a predictor is built from.

Installing into a bot's environment (Python >= 3.11)::

    pip install -r /path/to/trainfarm/trainfarm_client/requirements.txt -c /path/to/trainfarm/constraints.txt

``constraints.txt`` pins the library versions the farm trains with: use them, because a pack's
``self_check`` refuses to serve when this machine's libraries compute other probabilities. Then make the
package importable, either by copying the ``trainfarm_client/`` folder into the bot's project (it is
self-contained) or with ``pip install --no-deps -e /path/to/trainfarm`` (the farm's own packages come
along, without their dependencies; the client never imports them).
"""

__version__ = "0.1.0"
