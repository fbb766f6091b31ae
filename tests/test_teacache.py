"""TeaCache: the official coefficients' schedule, the same for every guidance pass, reset between clips."""

import numpy as np
import pytest
import torch

from multitalk.pipeline import shifted_timesteps
from multitalk.random_pipeline import random_pipeline
from multitalk.synthetic import make_sample, random_scene
from multitalk.teacache import COEFFICIENTS, TeaCacheConfig, apply_teacache, remove_teacache, teacache_schedule


@pytest.fixture(scope="module")
def duet():
    return make_sample(random_scene(3, 2, 1.0, "add", width=64, height=64, action=None))


def run(pipe, duet, text_guidance=5.0, steps=8):
    calls = []
    hook = pipe.transformer.blocks[0].attn1.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = pipe(
            duet.video[0],
            duet.tracks,
            "two people talk",
            mode="clip",
            num_frames=5,
            num_inference_steps=steps,
            text_guidance=text_guidance,
            generator=torch.Generator().manual_seed(0),
        ).frames
    finally:
        hook.remove()
    return out, len(calls)


def test_schedule_follows_the_official_rule():
    pipe = random_pipeline("tiny", seed=0)
    t = shifted_timesteps(12, 7.0)[:-1]
    config = TeaCacheConfig(threshold=0.2)
    compute = teacache_schedule(pipe.transformer, t, config, COEFFICIENTS["480"])
    assert compute[:5] == [True] * 5 and len(compute) == 12
    # the rule itself, re-stated: accumulate the rescaled relative change of e0, skip under the threshold
    from multitalk.teacache import time_modulation

    rescale, acc, prev, expected = np.poly1d(COEFFICIENTS["480"]), 0.0, None, []
    for i, step in enumerate(t):
        e0 = time_modulation(pipe.transformer, step)
        if i < 5:
            expected.append(True)
            acc = 0.0
        else:
            acc += rescale(((e0 - prev).abs().mean() / prev.abs().mean()).item())
            expected.append(bool(acc >= 0.2))
            acc = 0.0 if expected[-1] else acc
        prev = e0
    assert compute == expected
    assert all(teacache_schedule(pipe.transformer, t, TeaCacheConfig(threshold=0.0), COEFFICIENTS["480"]))


@pytest.mark.parametrize("text_guidance, passes", [(5.0, 3), (1.0, 2)])
def test_every_pass_skips_the_scheduled_steps(duet, text_guidance, passes):
    pipe = random_pipeline("tiny", seed=0)
    pipe.set_progress_bar_config(disable=True)
    plain, plain_calls = run(pipe, duet, text_guidance)
    assert plain_calls == 8 * passes
    config = apply_teacache(pipe.transformer, TeaCacheConfig(threshold=1e9))  # skip all it may
    cached, calls = run(pipe, duet, text_guidance)
    assert config.compute == [True] * 5 + [False] * 3
    assert calls == 5 * passes  # every guidance pass follows the same schedule
    assert not np.array_equal(cached, plain)
    remove_teacache(pipe.transformer)


def test_threshold_zero_equals_no_cache(duet):
    pipe = random_pipeline("tiny", seed=0)
    pipe.set_progress_bar_config(disable=True)
    plain, _ = run(pipe, duet)
    apply_teacache(pipe.transformer, TeaCacheConfig(threshold=0.0))
    cached, calls = run(pipe, duet)
    assert calls == 8 * 3 and np.array_equal(cached, plain)
