"""trainfarm's bot client: load, verify and hot-reload the champion model of a (symbol, timeframe).

Bots embed this package; it depends only on what a bot needs (numpy, polars, redis and the model
libraries), never on the farm's Celery, database or CLI code, and it never imports the farm's ``shared``
package (the farm imports the client instead: features, stacking, calibration and model loading have
one implementation, here). Importing it loads no model library: each is imported when a pack needs it.

Modules:

* :mod:`trainfarm_client.live` -- ``LiveModel``, a bot's verified, hot-reloading view of the champion;
* :mod:`trainfarm_client.predictor` -- ``Predictor.load(pack)``, ``predict_bars``, ``self_check``,
  ``decide`` (the trading rule with the pack's p*);
* :mod:`trainfarm_client.features` -- the causal features, the same code training used;
* :mod:`trainfarm_client.featuresets`, :mod:`trainfarm_client.featurespec` -- feature sets (built in, or a
  user's under the ``trainfarm.features`` entry point) and what a pack reads (context series included);
* :mod:`trainfarm_client.contract` -- the Redis keys and channels shared with the farm;
* :mod:`trainfarm_client.errors` -- ``ClientError`` and its children, each saying who handles it;
* :mod:`trainfarm_client.pack`, ``models``, ``numpy_models``, ``stacking``, ``calibration``, ``probs``
  -- the pieces a predictor is built from.

It is its own distribution, ``trainfarm-client``; install it into a bot's environment with the farm's
``constraints.txt`` (``pip install -c constraints.txt ./trainfarm_client``), because a pack's
``self_check`` refuses to serve when this machine's libraries compute other probabilities. Usage and
installation in full: docs/bot-contract.md, "The Python client", in the farm's repository.
"""

__version__ = "0.1.0"
