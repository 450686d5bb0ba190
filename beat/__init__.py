"""Beat side of trainfarm: the schedule built from the universe config (:mod:`trainfarm.beat.schedule`) and
the app `celery beat` runs (:mod:`trainfarm.beat.app`, ``celery -A trainfarm.beat.app beat``).

The trigger policies are domain decisions (:mod:`trainfarm.shared.monitoring.policies`) and the check that
fires them runs on workers (:mod:`trainfarm.workers.checks.trigger_check`); beat only schedules it. ``beat``
imports ``shared`` and ``workers``; nothing but the CLI imports ``beat``.
"""
