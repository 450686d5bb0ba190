"""Training stages that run inside worker tasks: plain functions, no Celery (the tasks wrap them)."""

from trainfarm.shared.training.base import BaseModelResult, result_path, train_base_model

__all__ = ["BaseModelResult", "result_path", "train_base_model"]
