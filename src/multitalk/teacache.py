"""TeaCache for MultiTalk, as a diffusers hook beside diffusers' own first-block cache.

TeaCache skips the transformer's blocks on steps where the input barely changed and adds the
residual the blocks produced last time instead. MultiTalk's official code decides from the
timestep modulation (``e0``, the time projection): it accumulates a polynomial rescaling of the
relative L1 change of ``e0`` between steps, skips while the sum stays under a threshold (0.2), and
always computes the first 5 steps. ``e0`` depends only on the timestep, so the decision is the same
for every guidance pass: the schedule is computed once per clip (``teacache_schedule``) and every
pass follows it (the official code counts passes modulo 3, which miscounts the 2-pass mode).

Use: ``apply_teacache(transformer, TeaCacheConfig())``; the pipeline then computes the schedule for
each clip and wraps every model call in ``transformer.cache_context(pass_name, step_index=i)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks.hooks import BaseState, StateManager

# The official MultiTalk coefficients (use_ret_steps), by resolution.
COEFFICIENTS = {
    "480": [2.57151496e5, -3.54229917e4, 1.40286849e3, -1.35890334e1, 1.32517977e-1],
    "720": [8.10705460e3, 2.13393892e3, -3.72934672e2, 1.66203073e1, -4.17769401e-2],
}
HOOK = "teacache"


@dataclass
class TeaCacheConfig:
    threshold: float = 0.2  # the official default; 0 computes every step
    warmup_steps: int = 5  # always computed (the official ret_steps)
    coefficients: list[float] | None = None  # None: by resolution (COEFFICIENTS)
    compute: list[bool] = field(default_factory=list)  # this clip's schedule, set by the pipeline


def time_modulation(transformer, timestep: torch.Tensor) -> torch.Tensor:
    """``e0``: the time projection the blocks are modulated with, for one timestep."""
    embedder = transformer.condition_embedder
    t = embedder.timesteps_proj(timestep.reshape(1).to(transformer.device))
    t = t.to(next(embedder.time_embedder.parameters()).dtype)
    temb = embedder.time_embedder(t).to(transformer.dtype)
    return embedder.time_proj(embedder.act_fn(temb)).float()


@torch.no_grad()
def teacache_schedule(
    transformer, timesteps: torch.Tensor, config: TeaCacheConfig, coefficients: list[float]
) -> list[bool]:
    """Per step: compute the blocks (True) or reuse the last residual (False)."""
    rescale = np.poly1d(coefficients)
    compute, accumulated, previous = [], 0.0, None
    for i, t in enumerate(timesteps):
        e0 = time_modulation(transformer, t)
        if i < config.warmup_steps or previous is None or config.threshold <= 0:
            run, accumulated = True, 0.0
        else:
            accumulated += float(rescale(((e0 - previous).abs().mean() / previous.abs().mean()).item()))
            run = accumulated >= config.threshold
            if run:
                accumulated = 0.0
        compute.append(run)
        previous = e0
    return compute


class _State(BaseState):
    def __init__(self):
        self.entry = None
        self.residual = None
        self.skipping = False

    def reset(self):
        self.entry = self.residual = None
        self.skipping = False


class _TeaCacheHook(ModelHook):
    """On every block. The first follows the schedule: when it skips, the cached residual stands in for
    all the blocks, and the others pass their input through. The last stores the blocks' residual."""

    _is_stateful = True

    def __init__(self, state_manager: StateManager, config: TeaCacheConfig, is_head: bool, is_tail: bool):
        super().__init__()
        self.state_manager, self.config, self.is_head, self.is_tail = state_manager, config, is_head, is_tail

    def new_forward(self, module, hidden_states, *args, **kwargs):
        state = self.state_manager.get_state()
        if self.is_head:
            step = self.state_manager.context.step_index
            compute = self.config.compute
            state.skipping = bool(
                step is not None and step < len(compute) and not compute[step] and state.residual is not None
            )
            if state.skipping:
                return hidden_states + state.residual
            state.entry = hidden_states
        elif state.skipping:
            return hidden_states
        out = self.fn_ref.original_forward(hidden_states, *args, **kwargs)
        if self.is_tail:
            state.residual = out - state.entry
        return out

    def reset_state(self, module):
        self.state_manager.reset()
        return module


def apply_teacache(transformer, config: TeaCacheConfig) -> TeaCacheConfig:
    """Hook every block of ``transformer``; returns the config whose ``compute`` schedule the hooks follow."""
    blocks = list(transformer.blocks)
    manager = StateManager(_State)
    for i, block in enumerate(blocks):
        hook = _TeaCacheHook(manager, config, is_head=i == 0, is_tail=i == len(blocks) - 1)
        HookRegistry.check_if_exists_or_initialize(block).register_hook(hook, HOOK)
    transformer._teacache = config
    return config


def remove_teacache(transformer) -> None:
    for block in transformer.blocks:
        registry = HookRegistry.check_if_exists_or_initialize(block)
        if HOOK in registry.hooks:
            registry.remove_hook(HOOK, recurse=False)
    transformer._teacache = None


def reset_teacache(transformer) -> None:
    """Forget the cached residuals (a new clip starts from other latents)."""
    for block in transformer.blocks:
        registry = HookRegistry.check_if_exists_or_initialize(block)
        if HOOK in registry.hooks:
            registry.hooks[HOOK].reset_state(block)
