"""Celery side of trainfarm: the Celery app, queue routing and thin tasks.

Tasks here parse their JSON payloads and call plain functions in ``shared``; nothing in ``shared`` imports
Celery. The app and the tasks arrive with the training farm (train_base, train_meta).
"""
