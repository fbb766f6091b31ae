"""Memory tiers: the low tier's pieces (group offload, float8 storage) keep the transformer's output."""

import pytest
import torch

from multitalk.errors import MultiTalkInputError
from multitalk.memory import check_tier, offload_transformer_blocks
from multitalk.models import MultiTalkTransformer3DModel


def inputs(model):
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(3, 8, 8)
    masks[0, :, :4], masks[1, :, 4:] = 1, 1
    return dict(
        hidden_states=torch.randn(1, cfg.in_channels, 3, 8, 8, generator=g),
        timestep=torch.tensor([500.0]),
        encoder_hidden_states=torch.randn(1, 7, cfg.text_dim, generator=g),
        audio=torch.randn(1, 2, 9, cfg.audio_window, cfg.audio_layers, cfg.audio_channels, generator=g),
        reference_masks=masks,
        return_dict=False,
    )


@pytest.mark.parametrize("fp8, tolerance", [(False, 1e-6), (True, 0.15)])
def test_group_offload_and_fp8_storage_keep_the_output(fp8, tolerance):
    torch.manual_seed(0)
    model = MultiTalkTransformer3DModel.from_preset("tiny").eval()
    args = inputs(model)
    with torch.no_grad():
        plain = model(**args)[0]
        offload_transformer_blocks(model, "cpu", fp8=fp8)
        tiered = model(**args)[0]
    error = ((tiered - plain).norm() / plain.norm()).item()
    assert error <= tolerance, error
    if fp8:
        assert model.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
        assert model.audio_proj.proj1.weight.dtype == torch.float32  # the adapter keeps its precision


def test_tiers_that_need_a_gpu_are_refused_on_the_cpu():
    check_tier("max", "cpu")
    for tier, message in (("balanced", "--memory max"), ("low", "--memory max"), ("tiny", "unknown --memory")):
        with pytest.raises(MultiTalkInputError, match=message):
            check_tier(tier, "cpu")


@pytest.mark.parametrize("kind, tolerance", [("int8", 0.05), ("fp8", 0.15)])
def test_torchao_weight_only_quantization_keeps_the_output(kind, tolerance):
    pytest.importorskip("torchao", reason="torchao is not installed")
    from multitalk.memory import check_quantize, quantize_weights

    torch.manual_seed(0)
    model = MultiTalkTransformer3DModel.from_preset("small").eval()
    args = inputs(model)
    with torch.no_grad():
        plain = model(**args)[0]
        try:
            count = quantize_weights(model, kind)
            quantized = model(**args)[0]
        except (NotImplementedError, RuntimeError) as err:  # a kernel this CPU build lacks
            pytest.skip(f"{kind} weight-only kernels are not available here: {err}")
    assert count > 0
    error = ((quantized - plain).norm() / plain.norm()).item()
    assert error <= tolerance, error
    assert type(model.blocks[0].attn1.to_q.weight).__name__ == {"int8": "Int8Tensor", "fp8": "Float8Tensor"}[kind]
    assert type(model.audio_proj.proj1.weight) is torch.nn.Parameter  # the adapter stays as it is
    with pytest.raises(MultiTalkInputError, match="already stores"):
        check_quantize(kind, "low")
    with pytest.raises(MultiTalkInputError, match="unknown --quantize"):
        check_quantize("int4", "max")
