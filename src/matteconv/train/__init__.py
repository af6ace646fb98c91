"""MODNet training (`matteconv train`): synthetic data, the seed's temporal recipe, distributed runs."""
from .trainer import TrainConfig, TrainSummary, train

__all__ = ["TrainConfig", "TrainSummary", "train"]
