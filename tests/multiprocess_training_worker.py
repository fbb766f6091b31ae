"""One process of `accelerate launch --cpu --num_processes 2` (test_multiprocess_training.py):
trains from a config, recording the clips this process drew and what it wrote, into RANK.json."""

import json
import sys
from pathlib import Path

import multitalk.training.trainer as trainer_module
from multitalk.training import load_config, trainer_for
from multitalk.training.data import CachedClips

drawn, wrote = [], {"loss_curve": 0, "trainer_json": 0, "final": 0}
batch, atomic_output, write_loss_curve = (
    CachedClips.batch,
    trainer_module.atomic_output,
    trainer_module.write_loss_curve,
)


def recording_batch(self, rng, size, motion=False):
    out = batch(self, rng, size, motion)
    drawn.append(out["latents"].flatten()[:4].tolist())  # which clips: their first latent values
    return out


def counting_atomic_output(path):
    wrote["trainer_json"] += Path(path).name == "trainer.json"
    return atomic_output(path)


def counting_loss_curve(*args, **kwargs):
    wrote["loss_curve"] += 1
    return write_loss_curve(*args, **kwargs)


CachedClips.batch = recording_batch
trainer_module.atomic_output = counting_atomic_output
trainer_module.write_loss_curve = counting_loss_curve

if __name__ == "__main__":
    config, out, resume = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "resume"
    trainer = trainer_for(load_config(config), progress=False)
    save_final = trainer.save_final

    def counting_final():
        wrote["final"] += 1
        return save_final()

    trainer.save_final = counting_final
    history = trainer.run(resume=resume)
    rank = trainer.accelerator.process_index
    (out / f"{rank}.json").write_text(
        json.dumps({"drawn": drawn, "wrote": wrote, "losses": [h["loss"] for h in history], "step": trainer.step})
    )
