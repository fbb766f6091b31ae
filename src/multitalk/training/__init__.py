"""Training (DESIGN §1): flow matching on VAE latents, partial-parameter and multi-task, on accelerate."""

from .config import TrainConfig, load_config
from .trainer import Trainer, flow_matching_loss

__all__ = ["TrainConfig", "Trainer", "flow_matching_loss", "load_config"]
