"""pytest under torchrun (issue 19): rank 0 runs the audit, every other rank serves its pool.

Every rank runs the same pytest command line, so every rank opens the same audits (same spec,
model, seed). After collection all ranks join the process group; rank 0 then runs the items as
usual (its pools spread new samples over the ranks, see sampling.ranks), while the other ranks
skip the test loop and answer rank 0's requests until it says stop (at the end of its session,
whatever ended it). Ranks other than 0 write no report and their own cache shard.
"""

from __future__ import annotations

from typing import Any

import pytest


class RankPlugin:
    def __init__(self, run: Any) -> None:
        self.run = run
        self.ranks: Any = None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from ..sampling.ranks import RankError, Ranks

        audits = list(self.run.audits.values())
        use_cuda = _cuda(audits)
        try:
            self.ranks = Ranks.from_env(use_cuda)
        except RankError as exc:
            raise pytest.UsageError(str(exc)) from None
        for audit in audits:
            audit.ranks = self.ranks
            if self.ranks.rank > 0:
                audit.options.shard = f"rank-{self.ranks.rank}"
            if use_cuda and audit.options.device in ("auto", "cuda"):  # one GPU per rank of a node
                audit.options.device = f"cuda:{self.ranks.local_rank}"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        if self.ranks is None or self.ranks.rank == 0:
            return None
        from ..sampling.ranks import RankError

        try:
            serve(self.ranks, self.run.audits.values())
        except RankError as exc:  # rank 0 went away: this rank's shard keeps what it wrote
            pytest.exit(str(exc), returncode=pytest.ExitCode.INTERNAL_ERROR)
        return True  # no items run here: rank 0 owns them

    @pytest.hookimpl(trylast=True)  # after the outputs are written: writing them may still need samples
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.ranks is not None and self.ranks.rank == 0:
            from ..sampling.ranks import RankError

            try:
                self.ranks.broadcast(("stop", None, None))
            except RankError:  # a rank already stopped: nothing left to tell it
                pass

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.ranks is not None:
            self.ranks.close()


def serve(ranks: Any, audits: Any) -> None:
    """Answer rank 0's requests until it says stop: generate and judge this rank's share."""
    from ..sampling.ranks import share

    by_name = {a.loaded.display: a for a in audits}
    while True:
        op, tag, work = ranks.broadcast()
        if op == "stop":
            return
        try:
            audit = by_name[tag[0]]
            pool = audit.pool if tag[1] == "candidate" else audit.released_pool
            part = {"rows": pool.make_share(work, share(work, ranks.rank, ranks.world)), "error": None}
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - also pytest.exit (a model that does not load): rank 0 stops the run with this line
            message = getattr(exc, "msg", None) or str(exc)
            text = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
            part = {"rows": [], "error": f"synthcxr: rank {ranks.rank}: {text}"}
        ranks.gather(part)


def _cuda(audits: list[Any]) -> bool:
    devices = {a.options.device for a in audits}
    if not any(d == "auto" or str(d).startswith("cuda") for d in devices):
        return False
    import torch

    return bool(torch.cuda.is_available())
