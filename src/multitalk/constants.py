"""Numbers every layer shares: the audio rate wav2vec2 was trained on, the video rate MultiTalk's
audio windows assume, and the flow-matching time scale of Wan's scheduler."""

SAMPLE_RATE = 16000  # Hz: every waveform inside the package
FPS = 25  # video frames per second: the audio windows and the official clips assume it
NUM_TRAIN_TIMESTEPS = 1000
REGIONS_FILE = "regions.npz"  # per sample: where the people, heads and mouths are (training/regions.py reads it)
# settings of the previous release under their old names, still read (model folders, queued jobs, requests)
OLD_SETTING_NAMES = {"steps": "num_inference_steps", "frames": "num_frames"}
