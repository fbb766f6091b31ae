"""What MultiTalk's additions need when diffusers' context parallelism splits the video tokens.

``enable_parallelism(ContextParallelConfig(...))`` splits the token sequence into equal
contiguous shards at the first block and gathers it after ``proj_out`` (Wan's ``_cp_plan``);
the self-attention is made whole again inside diffusers' dispatch (Ulysses all-to-all, ring).
Three things of ours look across tokens and so must know about the split:

* the audio cross-attention pairs each video token with *its latent frame's* audio: a shard
  may start and end mid-frame, so frames come from the tokens' global indices;
* the reference map scores every token against the keys of latent frame 0, which live on the
  ranks holding the first tokens: those keys are gathered (queries stay local);
* Label-RoPE normalises each person's map by its min and max over *all* tokens: reduced over the
  group (each token's winning class is its own business and stays local).

Rank and offset come from the parallel config's flattened mesh, as diffusers' sharder takes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    """This process's slice of the video tokens: global index of its first token, and the group."""

    offset: int
    size: int
    group: object  # torch.distributed.ProcessGroup

    @property
    def world(self) -> int:
        return dist.get_world_size(self.group)


def shard_of(parallel_config, total_tokens: int) -> Shard | None:
    """The local shard under a model's ``_parallel_config`` (None without context parallelism)."""
    cp = getattr(parallel_config, "context_parallel_config", None)
    if cp is None or cp._flattened_mesh is None:
        return None
    group = cp._flattened_mesh.get_group()
    world = dist.get_world_size(group)
    if total_tokens % world:
        raise ValueError(
            f"{total_tokens} video tokens cannot be split over {world} processes; choose a size or frame count "
            f"whose token count ((frames-1)/4+1) x (height/16) x (width/16) is divisible by {world}"
        )
    size = total_tokens // world
    return Shard(offset=dist.get_rank(group) * size, size=size, group=group)


def gather_reference_keys(key: torch.Tensor, tokens_per_frame: int, shard: Shard | None) -> torch.Tensor:
    """The keys of latent frame 0 (``[B, tokens_per_frame, H, D]``) whichever ranks hold them.

    Every rank sends its first ``min(local, tokens_per_frame)`` keys; in rank order they are the
    global tokens from 0 on (the whole of frame 0 when one shard holds it, else every shard whole).
    """
    if shard is None or shard.world == 1:
        return key[:, :tokens_per_frame]
    first = key[:, : min(shard.size, tokens_per_frame)].contiguous()
    parts = [torch.empty_like(first) for _ in range(shard.world)]
    dist.all_gather(parts, first, group=shard.group)
    return torch.cat(parts, dim=1)[:, :tokens_per_frame]


def global_min_max(low: torch.Tensor, high: torch.Tensor, shard: Shard | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise min of ``low`` and max of ``high`` over the group (unchanged without one)."""
    if shard is None or shard.world == 1:
        return low, high
    low, high = low.clone(), high.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN, group=shard.group)
    dist.all_reduce(high, op=dist.ReduceOp.MAX, group=shard.group)
    return low, high


def check_context_parallel(heads: int, ulysses: int, ring: int, backend: str | None = None) -> None:
    """Refuse, in one line, what cannot be split (the token count is checked per call, in ``shard_of``)."""
    if ulysses < 1 or ring < 1:
        raise ValueError(f"--ulysses and --ring must be at least 1, got {ulysses} and {ring}")
    if heads % ulysses:
        raise ValueError(f"{heads} attention heads cannot be split over --ulysses {ulysses}; use a divisor of {heads}")
    if ring > 1 and backend in (None, "native"):
        raise ValueError(
            "ring attention needs a backend that returns the softmax's log-sum-exp: set --attention-backend "
            "_native_cudnn or flash (or use --ulysses only)"
        )


def is_first_rank(parallel_config) -> bool:
    """Whether this process writes the results (every rank computes the same video; one writes it)."""
    cp = getattr(parallel_config, "context_parallel_config", None)
    if cp is None or cp._flattened_mesh is None:
        return True
    return dist.get_rank(cp._flattened_mesh.get_group()) == 0


def enable_context_parallel(transformer, ulysses: int = 1, ring: int = 1) -> None:
    """Split the transformer's video tokens over the ``ulysses × ring`` processes of the started
    process group (``torchrun``), after the checks that make a failure one clear line."""
    from diffusers import ContextParallelConfig

    if not dist.is_initialized():
        raise ValueError("context parallelism needs a process group: run under torchrun --nproc_per_node N")
    if dist.get_world_size() != ulysses * ring:
        raise ValueError(
            f"--ulysses {ulysses} x --ring {ring} = {ulysses * ring} processes, but torchrun started "
            f"{dist.get_world_size()}; make them equal"
        )
    backend = None
    for module in transformer.modules():
        backend = getattr(getattr(module, "processor", None), "_attention_backend", None) or backend
    check_context_parallel(transformer.config.num_attention_heads, ulysses, ring, str(backend) if backend else None)
    transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=ulysses, ring_degree=ring))
