"""What the tests share: plain helper modules (no fixtures; those stay in the conftest files).

One name per concept:

* ``farm``: :class:`~tests.support.farm.Farm`, a farm home with real worker processes on a real Redis
  (:func:`~tests.support.farm.start_farm`), what the integration and reliability tests build on.
* ``candidates``: :class:`~tests.support.candidates.CandidateBench`, which builds and judges candidate
  packs in-process (no Celery) for the gate property tests.
* ``packs``: real packs trained in-process (``farm_settings``, ``build_versions``, ``run_in_process``).
* ``markets``: two crowned markets on a real registry and Redis (``two_markets``, ``crown``).
* ``services``: where the repository, its data and the services outside it are (``REPO_ROOT``,
  ``require``, ``free_port``, ``RedisServer``, ``postgres_database``).
* ``waiting``: the tests' one wait helper, ``wait_until``.
* ``browser``: the system's Chromium through Playwright, signed in as the dashboard's operator
  (``chromium``, ``signed_in``).
* ``bars``, ``clock``, ``concurrency``, ``state``, ``tcp_proxy``, ``wheels``: hand-built bars, a stepping
  clock, work released in threads, before/after snapshots of a farm's state, a TCP proxy a test can cut,
  wheels and fresh environments.

Programs the tests start as child processes stay beside the tests that start them
(``tests/reliability/crash_child.py``, ``tests/reliability/bot_fleet.py``, ``tests/integration/apps/``).
"""
