"""Beat side of trainfarm: the schedule built from the universe config (:mod:`trainfarm.beat.schedule`) and
the app `celery beat` runs (:mod:`trainfarm.beat.app`, ``celery -A trainfarm.beat.app beat``).

The trigger policies will live here too. ``beat`` imports ``shared`` and ``workers``; nothing but the CLI
imports ``beat``.
"""
