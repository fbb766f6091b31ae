"""The MultiTalk transformer, audio adapter, audio attention and Label-RoPE on tiny configs."""

import pytest
import torch

from multitalk.models import (
    AudioAdapter,
    AudioCrossAttention,
    LabelLayout,
    MultiTalkTransformer3DModel,
    assign_labels,
    audio_labels,
    fold_windows_per_latent_frame,
    frame_windows,
    reference_attention_map,
    rotate_by_labels,
)

T, H, W = 3, 4, 8  # latent frames, latent height, latent width -> 2 x 4 tokens per frame


def default_masks(people, h=H, w=W):
    masks = torch.zeros(people + 1, h, w)
    for i in range(people):
        masks[i, :, i * w // people : (i + 1) * w // people] = 1
    masks[people] = 1 - masks[:people].amax(0)
    return masks


def inputs(people, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(batch, 36, T, H, W, generator=g),
        timestep=torch.full((batch,), 400.0),
        encoder_hidden_states=torch.randn(batch, 5, 16, generator=g),
        audio=torch.randn(batch, people, 4 * (T - 1) + 1, 5, 2, 8, generator=g),
    )


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MultiTalkTransformer3DModel.from_preset("tiny").eval()


@pytest.mark.parametrize("people", [1, 2, 3])
def test_output_shapes(model, people):
    with torch.no_grad():
        out = model(**inputs(people, batch=2), reference_masks=default_masks(people)).sample
    assert out.shape == (2, 16, T, H, W)
    assert torch.isfinite(out).all()


def test_one_person_output_ignores_masks(model):
    x = inputs(1)
    with torch.no_grad():
        a = model(**x).sample
        b = model(**x, reference_masks=torch.rand(2, H, W)).sample
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_two_people_need_matching_masks(model):
    with pytest.raises(ValueError, match="need reference_masks"):
        model(**inputs(2))
    with pytest.raises(ValueError, match="expected 3"):
        model(**inputs(2), reference_masks=default_masks(3))
    bad = inputs(2)
    bad["audio"] = bad["audio"][:, :, :-1]
    with pytest.raises(ValueError, match="audio must be"):
        model(**bad, reference_masks=default_masks(2))


def test_official_14b_preset_has_the_official_audio_shapes():
    with torch.device("meta"):
        big = MultiTalkTransformer3DModel.from_preset("wan2.1-i2v-14b-480p")
    shapes = {k: tuple(v.shape) for k, v in big.state_dict().items()}
    assert shapes["blocks.39.norm_x.weight"] == (5120,)
    assert shapes["blocks.0.audio_cross_attn.q_linear.weight"] == (5120, 5120)
    assert shapes["blocks.0.audio_cross_attn.kv_linear.weight"] == (10240, 768)
    assert shapes["blocks.0.audio_cross_attn.proj.weight"] == (5120, 5120)
    assert shapes["audio_proj.proj1.weight"] == (512, 5 * 12 * 768)
    assert shapes["audio_proj.proj1_vf.weight"] == (512, 8 * 12 * 768)
    assert shapes["audio_proj.proj2.weight"] == (512, 512)
    assert shapes["audio_proj.proj3.weight"] == (32 * 768, 512)
    assert shapes["audio_proj.norm.weight"] == (768,)
    assert shapes["condition_embedder.image_embedder.norm1.weight"] == (1280,)
    assert shapes["blocks.0.attn2.add_k_proj.weight"] == (5120, 5120)
    assert "blocks.40.norm_x.weight" not in shapes


# ------------------------------------------------------------------------------ audio adapter
def test_frame_windows_clamp_at_the_edges():
    features = torch.arange(6.0)[:, None, None]  # 6 frames, 1 layer, 1 channel
    windows = frame_windows(features, 0, 6)[..., 0, 0]
    assert windows[0].tolist() == [0, 0, 0, 1, 2]
    assert windows[3].tolist() == [1, 2, 3, 4, 5]
    assert windows[5].tolist() == [3, 4, 5, 5, 5]


def test_latent_frame_folding_follows_the_reference_positions():
    # window entry = 10 * video frame + window position, so we can read where each came from
    frames, window = 9, 5
    windows = (10 * torch.arange(frames)[:, None] + torch.arange(window)[None, :]).float()
    first, later = fold_windows_per_latent_frame(windows[None, :, :, None, None])
    assert first[0, 0, :, 0, 0].tolist() == [0, 1, 2, 3, 4]
    # latent frame 1 covers video frames 1..4: positions 0-2 of frame 1, 2 of 2 and 3, 2-4 of 4
    assert later[0, 0, :, 0, 0].tolist() == [10, 11, 12, 22, 32, 42, 43, 44]
    assert later[0, 1, :, 0, 0].tolist() == [50, 51, 52, 62, 72, 82, 83, 84]


def test_adapter_is_per_latent_frame():
    torch.manual_seed(0)
    adapter = AudioAdapter(layers=2, channels=3, intermediate_dim=8, output_dim=6, context_tokens=4).eval()
    windows = torch.randn(1, 9, 5, 2, 3)
    out = adapter(windows)
    assert out.shape == (1, 3, 4, 6)
    changed = windows.clone()
    changed[:, 5:9] += 1.0  # video frames 5..8 = latent frame 2
    diff = (adapter(changed) - out).abs().amax(dim=(0, 2, 3))
    assert diff[0] == 0 and diff[1] == 0 and diff[2] > 0


# --------------------------------------------------------------------------- audio attention
def attention_module(seed=0):
    torch.manual_seed(seed)
    return AudioCrossAttention(dim=16, audio_dim=6, num_heads=2).eval()


def test_audio_attention_is_per_latent_frame():
    attn = attention_module()
    frames, tokens = 3, 5
    x = torch.randn(1, frames * tokens, 16)
    audio = torch.randn(1, frames, 2 * 4, 6)
    labels = torch.rand(1, frames * tokens) * 24
    kwargs = dict(
        num_people=2, binding="lrope", token_labels=labels, audio_token_labels=audio_labels(2, 4, LabelLayout())
    )
    base = attn(x, audio, **kwargs)
    changed = audio.clone()
    changed[:, 1] = torch.randn(2 * 4, 6)
    diff = (attn(x, changed, **kwargs) - base).abs().amax(-1).view(frames, tokens).amax(-1)
    assert diff[0] == 0 and diff[2] == 0 and diff[1] > 0


def test_single_person_path_is_plain_attention():
    attn = attention_module()
    x, audio = torch.randn(2, 3 * 4, 16), torch.randn(2, 3, 4, 6)
    out = attn(x, audio, num_people=1)
    q = attn.q_linear(x).view(2, 3, 4, 2, 8)  # B, T, S, H, D
    k, v = attn.kv_linear(audio).view(2, 3, 4, 2, 2, 8).unbind(3)  # B, T, A, H, D
    scores = torch.einsum("btshd,btahd->bthsa", q, k) / 8**0.5
    manual = torch.einsum("bthsa,btahd->btshd", scores.softmax(-1), v).reshape(2, 12, 16)
    torch.testing.assert_close(out, attn.proj(manual), rtol=1e-5, atol=1e-6)


def test_label_shift_leaves_audio_attention_unchanged():
    attn = attention_module()
    x, audio = torch.randn(1, 2 * 6, 16), torch.randn(1, 2, 2 * 4, 6)
    labels = torch.rand(1, 12) * 24
    audio_lab = audio_labels(2, 4, LabelLayout())
    a = attn(x, audio, 2, "lrope", labels, audio_lab)
    b = attn(x, audio, 2, "lrope", labels + 37.5, audio_lab + 37.5)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_equal_labels_give_the_unrotated_score():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 32, generator=g), torch.randn(1, 1, 1, 32, generator=g)
    label = torch.tensor([22.0])
    rotated = (rotate_by_labels(q, label) * rotate_by_labels(k, label)).sum()
    torch.testing.assert_close(rotated, (q * k).sum(), rtol=1e-5, atol=1e-5)
    # and a different label does change it
    other = (rotate_by_labels(q, torch.tensor([2.0])) * rotate_by_labels(k, label)).sum()
    assert (other - (q * k).sum()).abs() > 1e-3


def test_sum_binding_sums_separate_streams():
    attn = attention_module()
    x, audio = torch.randn(1, 2 * 5, 16), torch.randn(1, 2, 2 * 4, 6)
    both = attn(x, audio, 2, "sum")
    bias = attn.proj.bias
    each = [attn(x, audio[:, :, i * 4 : (i + 1) * 4], 1) - bias for i in range(2)]
    torch.testing.assert_close(both, each[0] + each[1] + bias, rtol=1e-5, atol=1e-5)


def test_split_binding_hears_only_its_own_stream():
    attn = attention_module()
    frames, tokens = 2, 6
    x, audio = torch.randn(1, frames * tokens, 16), torch.randn(1, frames, 2 * 4, 6)
    person = torch.tensor([[0, 0, -1, -1, 1, 1]])
    out = attn(x, audio, 2, "split", token_person=person)
    changed = audio.clone()
    changed[:, :, 4:] = torch.randn(frames, 4, 6)  # person 2's stream only
    diff = (attn(x, changed, 2, "split", token_person=person) - out).abs().amax(-1).view(frames, tokens)
    assert (diff[:, :4] == 0).all() and (diff[:, 4:] > 0).all()
    # background tokens get only the output bias (no audio)
    bias = attn.proj.bias.expand(frames, 2, -1)
    torch.testing.assert_close(out.view(frames, tokens, 16)[:, 2:4], bias)


# ----------------------------------------------------------------------------------- L-RoPE
def test_two_person_layout_is_the_official_one():
    layout = LabelLayout()
    assert layout.person_range(0) == (0, 4) and layout.person_range(1) == (20, 24)
    assert layout.background == 12
    assert audio_labels(2, 3, layout).tolist() == [2, 2, 2, 22, 22, 22]
    assert layout.person_range(2) == (40, 44) and layout.audio_label(2) == 42


def test_labels_follow_the_dominant_class():
    # classes: person 1, person 2, background; 4 tokens
    ref_map = torch.tensor([[[0.9, 0.1, 0.2, 0.1], [0.1, 0.8, 0.3, 0.2], [0.0, 0.1, 0.5, 0.7]]])
    labels = assign_labels(ref_map, LabelLayout())[0]
    assert 0 <= labels[0] <= 4  # person 1 dominant
    assert 20 <= labels[1] <= 24  # person 2 dominant
    assert labels[2] == 12 and labels[3] == 12  # background dominant
    torch.testing.assert_close(labels[0], torch.tensor(4.0))  # its person's maximum -> top of range
    torch.testing.assert_close(labels[1], torch.tensor(24.0))


def test_three_people_labels_land_in_their_ranges():
    ref_map = torch.tensor([[[0.5, 0.1, 0.1, 0.0], [0.1, 0.6, 0.1, 0.0], [0.1, 0.1, 0.7, 0.0], [0.0, 0.0, 0.0, 0.9]]])
    labels = assign_labels(ref_map, LabelLayout())[0]
    assert 0 <= labels[0] <= 4 and 20 <= labels[1] <= 24 and 40 <= labels[2] <= 44 and labels[3] == 12


def test_reference_map_matches_a_naive_computation():
    g = torch.Generator().manual_seed(0)
    S, R, heads, D = 12, 4, 4, 8
    q, k = torch.randn(1, S, heads, D, generator=g), torch.randn(1, S, heads, D, generator=g)
    masks = torch.tensor([[[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]]).float()
    got = reference_attention_map(q, k, masks, tokens_per_frame=R, head_chunks=2)
    probs = torch.einsum("shd,rhd->hsr", q[0], k[0, :R]).div(D**0.5).softmax(-1)  # H, S, R
    expected = torch.stack([(probs * m).sum(-1).div(m.sum()).mean(0) for m in masks[0]])
    torch.testing.assert_close(got[0], expected, rtol=1e-5, atol=1e-6)


def test_model_binding_modes_all_run_and_differ(model):
    x = inputs(2)
    outs = {}
    with torch.no_grad():
        for mode in ("lrope", "concat", "sum", "split"):
            outs[mode] = model(**x, reference_masks=default_masks(2), binding=mode).sample
    assert all(torch.isfinite(o).all() for o in outs.values())
    assert (outs["lrope"] - outs["concat"]).abs().max() > 1e-4
    assert (outs["sum"] - outs["split"]).abs().max() > 1e-4


def test_first_block_cache_hook_applies():
    """diffusers' cache hooks find our block class through the registry."""
    from diffusers import FirstBlockCacheConfig

    torch.manual_seed(0)
    model = MultiTalkTransformer3DModel.from_preset("tiny").eval()
    x = inputs(2)
    with torch.no_grad():
        plain = model(**x, reference_masks=default_masks(2)).sample
        model.enable_cache(FirstBlockCacheConfig(threshold=0.0))
        with model.cache_context("cond"):
            cached = model(**x, reference_masks=default_masks(2)).sample
    torch.testing.assert_close(plain, cached)


def test_gradient_checkpointing_matches():
    torch.manual_seed(0)
    model = MultiTalkTransformer3DModel.from_preset("tiny")
    x = inputs(2)
    loss = model(**x, reference_masks=default_masks(2)).sample.square().mean()
    loss.backward()
    grad = model.blocks[0].audio_cross_attn.q_linear.weight.grad.clone()
    model.zero_grad()
    model.enable_gradient_checkpointing()
    model(**x, reference_masks=default_masks(2)).sample.square().mean().backward()
    torch.testing.assert_close(model.blocks[0].audio_cross_attn.q_linear.weight.grad, grad)


def test_clips_longer_than_the_training_ones_have_time_squeezed_into_its_span(tmp_path):
    model = MultiTalkTransformer3DModel.from_preset("tiny", trained_frames=9)  # 3 latent frames: positions 0..2
    rope, channels = model.rope, model.config.in_channels
    short, long = torch.zeros(1, channels, 3, H, W), torch.zeros(1, channels, 7, H, W)
    squeezed_short, squeezed_long = rope(short), rope(long)
    model.set_trained_frames(None)
    plain_short, plain_long = rope(short), rope(long)
    tokens, t_dim = H * W // 4, rope.t_dim
    for squeezed, plain, plain_wide in zip(squeezed_long, plain_short, plain_long):  # cos, then sin
        grid, trained = squeezed.view(7, tokens, -1), plain.view(3, tokens, -1)
        # 7 latent frames at 0, 1/3, ..., 2: the ends and the middle land on trained positions 0, 2 and 1
        torch.testing.assert_close(grid[[0, 3, 6]], trained[[0, 1, 2]])
        assert not torch.allclose(grid[1], trained[1])
        assert torch.equal(grid[..., t_dim:], plain_wide.view(7, tokens, -1)[..., t_dim:])  # height, width: Wan's
    assert all(torch.equal(a, b) for a, b in zip(squeezed_short, plain_short))  # no longer than trained: as Wan
    model.set_trained_frames(9)
    model.save_pretrained(tmp_path / "m")
    assert MultiTalkTransformer3DModel.from_pretrained(tmp_path / "m").rope.trained_latent_frames == 3
    with pytest.raises(ValueError, match="4k\\+1"):
        model.set_trained_frames(10)


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_reference_map_as_one_attention_call_equals_the_explicit_scores(classes):
    """softmax(q·kᵀ/√d) averaged over each class's mask, per head chunk then over chunks (the reference's
    arithmetic, written out with the S × R scores) == attention with the normalised masks as values."""
    from multitalk.models.lrope import reference_attention_map

    g = torch.Generator().manual_seed(classes)
    S, R, H, D = 40, 12, 4, 8  # noqa: N806
    q, k = torch.randn(1, S, H, D, generator=g), torch.randn(1, S, H, D, generator=g)
    masks = (torch.rand(1, classes, R, generator=g) > 0.5).float()
    masks[0, -1] = 0  # an empty class maps to 0
    total = 0
    for half in (slice(0, H // 2), slice(H // 2, H)):
        scores = torch.einsum("bshd,brhd->bhsr", q[:, :, half], k[:, :R, half]) / D**0.5
        probs = scores.softmax(-1)
        per_class = torch.einsum("bhsr,bcr->bhsc", probs, masks) / masks.sum(-1).clamp_min(1)[:, None, None]
        total = total + per_class.mean(1).transpose(1, 2)
    expected = total / 2
    got = reference_attention_map(q, k, masks, R, head_chunks=2)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert torch.all(got[:, -1] == 0)
