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

Installing into a bot's environment (Python >= 3.11): the client is its own distribution,
``trainfarm-client``, and installs alone (none of the farm's code or libraries come along)::

    pip install -c /path/to/trainfarm/constraints.txt /path/to/trainfarm/trainfarm_client

or the same with a wheel built from that folder (``pip wheel --no-deps /path/to/trainfarm/trainfarm_client``)
in place of the folder. ``constraints.txt`` pins the library versions the farm trains with: use them,
because a pack's ``self_check`` refuses to serve when this machine's libraries compute other
probabilities.
"""

__version__ = "0.1.0"
