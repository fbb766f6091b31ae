"""Training (docs/design.md §1): flow matching on VAE latents, partial-parameter and multi-task, on accelerate."""

from .config import TrainConfig, load_config
from .trainer import Trainer, TrainingLoop, flow_matching_loss


def trainer_for(config: TrainConfig, progress: bool = True) -> TrainingLoop:
    """The trainer of the config's stage."""
    if config.stage == "vae":
        from .vae import VAETrainer

        return VAETrainer(config, progress)
    return Trainer(config, progress)


__all__ = ["TrainConfig", "Trainer", "TrainingLoop", "flow_matching_loss", "load_config", "trainer_for"]
