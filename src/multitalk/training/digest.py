"""Fingerprints of weights: they tell whether frozen weights moved and whether a cache still fits its models."""

from __future__ import annotations

import hashlib

import torch


def weights_digest(module: torch.nn.Module, frozen_only: bool = False) -> str:
    """SHA-256 over names and values of the whole state (buffers too, e.g. mel filters), or
    ``frozen_only``: of the parameters with ``requires_grad=False``."""
    if frozen_only:
        tensors = {name: p for name, p in module.named_parameters() if not p.requires_grad}
    else:
        tensors = module.state_dict()
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def encoder_digest(vae) -> str:
    """What a VAE's normalised latents depend on: the encoder half (``encoder``, ``quant_conv``) and
    the latent statistics in its config — not the decoder, so a decoder trained further
    (``trainable: decoder``) keeps the clip caches and every transformer trained on them valid."""
    halves = torch.nn.ModuleDict({"encoder": vae.encoder, "quant_conv": vae.quant_conv})
    stats = [vae.config.get("latents_mean"), vae.config.get("latents_std")]
    return hashlib.sha256((weights_digest(halves) + repr(stats)).encode()).hexdigest()
