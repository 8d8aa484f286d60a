"""One audit over many processes (issue 19): ``torchrun --nproc-per-node=N -m pytest ...``.

Rank 0 runs pytest, the items and every sequential decision. Whenever its sample pool has
samples to generate (a round's misses), it splits them across all ranks over torch.distributed:
it broadcasts the work list (prompt, seed, whether a thumbnail is wanted), every rank generates
and judges its share (item j goes to rank j mod N) on its own device and writes it to its own
cache shard, and rank 0 gathers the scores. Images depend only on (prompt, seed), so the score
table, and therefore every number and verdict, equals a single-process run's.

Messages are Python objects over a gloo process group (they are small: scores and thumbnails),
whatever the backend of the default group (nccl on GPUs). A rank that dies makes the next
collective fail on rank 0, which stops the run with one line; what every rank wrote to its shard
stays, so a rerun resumes from the cache.

Only imported once a run is distributed (WORLD_SIZE > 1): it imports torch.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

#: how long a collective waits for a silent rank before the run stops. A rank that dies closes its
#: connections and is noticed at once; this bounds only a rank that hangs. It is long because the
#: other ranks also wait here while rank 0 works alone (cached rounds, reference checks, reports)
TIMEOUT_SECONDS = float(os.environ.get("SYNTHCXR_RANK_TIMEOUT", str(24 * 3600)))


class RankError(Exception):
    """Another rank stopped or failed: the run ends with this one line."""


def world_size() -> int:
    """WORLD_SIZE from torchrun / accelerate launch (1 when not launched distributed)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


@dataclass
class Ranks:
    rank: int
    world: int
    local_rank: int
    group: Any  # the gloo group the messages travel in

    @classmethod
    def from_env(cls, use_cuda: bool) -> "Ranks":
        """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)."""
        import torch.distributed as dist

        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RankError(f"synthcxr: WORLD_SIZE > 1 but {missing[0]} is not set: launch with torchrun or accelerate launch")
        timeout = datetime.timedelta(seconds=TIMEOUT_SECONDS)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timeout)
        group = dist.new_group(backend="gloo", timeout=timeout) if dist.get_backend() != "gloo" else dist.group.WORLD
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), group)

    def broadcast(self, message: Any = None) -> Any:
        """Rank 0's message, on every rank."""
        import torch.distributed as dist

        box = [message]
        self._collective(dist.broadcast_object_list, box, src=0, group=self.group)
        return box[0]

    def gather(self, part: Any) -> list[Any] | None:
        """Every rank's part, on rank 0 (None elsewhere)."""
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.rank == 0 else None
        self._collective(dist.gather_object, part, out, dst=0, group=self.group)
        return out

    def _collective(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except RuntimeError as exc:  # gloo: a peer closed its connection, or the timeout ran out
            line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise RankError(
                f"synthcxr: rank {self.rank}: another rank of the distributed audit stopped ({line}); "
                "what every rank generated is in the cache: rerun to resume"
            ) from None

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def share(work: list[Any], rank: int, world: int) -> list[int]:
    """Indices of the work items rank `rank` of `world` does (round robin: every rank gets the
    same mix of cells, so no rank waits on a slow cell)."""
    return list(range(rank, len(work), world))
