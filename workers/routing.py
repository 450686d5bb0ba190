"""Which Celery queue each task goes to."""
