"""Small models the real-model tests build: a probe network (TorchScript or state dict), specs."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

FIXTURES = Path(__file__).parent.parent / "fixtures"
TINY_SD = FIXTURES / "tiny-sd"


class ProbeNet(nn.Module):
    """Logit k = scale_k * (mean intensity - 0.5) + bias_k: a deterministic stand-in classifier."""

    def __init__(self, n_outputs: int = 1, in_channels: int = 1) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(4.0, -4.0, n_outputs))
        self.bias = nn.Parameter(torch.zeros(n_outputs))
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3)).unsqueeze(1)
        return self.scale * (m - 0.5) + self.bias


def make_torchscript_probe(path: Path, n_outputs: int) -> Path:
    net = ProbeNet(n_outputs).eval()
    with warnings.catch_warnings():  # torch 2.10+ deprecates TorchScript; users still ship it
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(net).save(str(path))
    return path


def make_state_dict_probe(path: Path, n_outputs: int) -> Path:
    net = ProbeNet(n_outputs)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(net.state_dict(), str(path))
    else:
        torch.save(net.state_dict(), str(path))
    return path


def small_spec(findings: tuple[str, ...] = ("Effusion",), samples: int = 3) -> str:
    """A spec of one finding, two subgroups, every check family (6 cells)."""
    return (
        f"samples_per_cell = {samples}\n"
        f"findings = {list(findings)!r}\n"
        "batch_size = 8\n"
        "[subgroups]\nsex = ['female', 'male']\nrace = ['White']\n"
        "[[bias]]\nmetric = 'tpr'\nstatistic = 'gap'\nprompt = ['named']\nmax = 0.5\n"
        "[validity]\nmin_sensitivity = 0.5\n"
        "[uncertainty]\nmax_entropy = 0.9\n"
        "[hallucination]\nmax_rate = 0.5\n"
    )


def one_group_spec(findings: tuple[str, ...] = ("Effusion",), samples: int = 2) -> str:
    """The smallest audit: one subgroup, validity + uncertainty + hallucination (2 cells, 3 items)."""
    return (
        f"samples_per_cell = {samples}\n"
        f"findings = {list(findings)!r}\n"
        "[subgroups]\nsex = ['female']\nrace = ['White']\n"
        "[validity]\nmin_sensitivity = 0.5\n"
        "[uncertainty]\nmax_entropy = 0.9\n"
        "[hallucination]\nmax_rate = 0.5\n"
    )
