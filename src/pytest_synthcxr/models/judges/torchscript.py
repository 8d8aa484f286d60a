"""User judges and probes: a TorchScript file, or a state dict plus an importable class.

This is how a user plugs in, e.g., a COVID-19 classifier for the hallucination check:

    [tool.synthcxr.judges.covid]
    kind = "torchscript"            # a TorchScript file, or a torch.export .pt2 file; or "state-dict"
                                    # with class = "mypkg.nets:CovidNet"
    path = "models/covid.pt"        # relative to the spec file
    labels = ["COVID-19"]           # one name per network output, in order
    threshold = 0.62                # operating point on the network's probability (-> 0.5)
    activation = "sigmoid"          # sigmoid | softmax | none (outputs already probabilities)
    size = 224                      # center crop to a square, resize to size x size
    normalize = "unit"              # unit [0,1] | symmetric [-1,1] | xrv [-1024,1024] | imagenet
    channels = 1                    # 1 or 3 (gray repeated)

A state dict must be a safetensors file unless --synthcxr-allow-pickle is given or the file's
SHA-256 is listed under the table's ``sha256`` (a pickle file can run code when loaded); ``class``
must come from torch.nn, torchvision.models, torchxrayvision, timm or a module listed under
``allow_modules`` (see :mod:`..trust`). TorchScript archives are read by torch.jit.load, which does not
unpickle arbitrary Python objects. Importing this module does not import torch.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .base import JudgeError, as_images, file_sha256, op_norm, preprocess

CHUNK = 16


def import_class(spec: str, judge: str, allow_modules: tuple[str, ...] = ()) -> Any:
    """The class `spec` names, only from an allowed module (see ..trust): never any callable."""
    from ..trust import class_refusal

    refused = class_refusal(spec, judge, allow_modules)
    if refused:
        raise JudgeError(refused)
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise JudgeError(f"synthcxr: judge {judge!r}: cannot import {module_name!r} (class {spec!r}): {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise JudgeError(f"synthcxr: judge {judge!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


class ProbeJudge:
    """A TorchScript or state-dict classifier scoring the given labels (see module docstring)."""

    def __init__(
        self,
        name: str,
        path: str | os.PathLike[str],
        labels: list[str],
        *,
        kind: str = "torchscript",
        class_path: str | None = None,
        init: dict[str, Any] | None = None,
        threshold: float | list[float] = 0.5,
        activation: str = "sigmoid",
        size: int = 224,
        channels: int = 1,
        normalize: str = "unit",
        mapping: dict[str, str] | None = None,
        device: str = "cpu",
        allow_pickle: bool = False,
        allow_modules: tuple[str, ...] = (),
        trusted_sha256: tuple[str, ...] = (),
    ) -> None:
        if kind not in ("torchscript", "state-dict"):
            raise JudgeError(f"synthcxr: judge {name!r}: kind must be torchscript or state-dict, got {kind!r}")
        if not labels:
            raise JudgeError(f"synthcxr: judge {name!r}: 'labels' is required (one name per network output, in order)")
        self.name = name
        self.kind = kind
        self.path = Path(path)
        if not self.path.is_file():
            raise JudgeError(f"synthcxr: judge {name!r}: weight file not found: {self.path}")
        if kind == "state-dict":
            if class_path is None:
                raise JudgeError(f"synthcxr: judge {name!r}: a state-dict judge needs 'class' ('package.module:ClassName')")
            if self.path.suffix != ".safetensors":
                from ..trust import pickle_refusal

                refused = pickle_refusal(self.path, name, allow_pickle=allow_pickle, trusted=trusted_sha256)
                if refused:
                    raise JudgeError(refused)
        self.labels = list(labels)
        self.mapping = dict(mapping or {})
        self.outputs: tuple[str, ...] = tuple(self.mapping.get(label, label) for label in self.labels)
        thresholds = threshold if isinstance(threshold, list) else [threshold] * len(self.labels)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        if self.thresholds.shape != (len(self.labels),) or not np.all((self.thresholds > 0) & (self.thresholds < 1)):
            raise JudgeError(f"synthcxr: judge {name!r}: threshold must be one value or {len(self.labels)} values in (0, 1)")
        self.class_path = class_path
        self.init = dict(init or {})
        self.activation = activation
        self.size = size
        self.channels = channels
        self.normalize = normalize
        self.device = device
        self.allow_pickle = allow_pickle
        self.allow_modules = tuple(allow_modules)
        self._sha256 = file_sha256(self.path)
        self._net = self._load()

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": str(self.path),
            "sha256": self._sha256,
            "class": self.class_path,
            "labels": self.labels,
            "mapping": self.mapping,
            "threshold": self.thresholds.tolist(),
            "activation": self.activation,
            "preprocessing": {"crop": "center square", "size": self.size, "normalize": self.normalize, "channels": self.channels},
            "device": self.device,
        }

    @property
    def fingerprint(self) -> str:
        config = {k: v for k, v in self.settings.items() if k not in ("file", "device")}
        return "probe:" + json.dumps(config, sort_keys=True)

    def _load(self) -> Any:
        import torch

        try:
            if self.kind == "torchscript" and self.path.suffix == ".pt2":  # a torch.export program
                net = torch.export.load(str(self.path)).module()
            elif self.kind == "torchscript":
                with warnings.catch_warnings():  # torch 2.10+ deprecates TorchScript; it still loads
                    warnings.simplefilter("ignore", FutureWarning)
                    net = torch.jit.load(str(self.path), map_location="cpu")
            else:
                if self.path.suffix == ".safetensors":
                    from safetensors.torch import load_file

                    state = load_file(str(self.path))
                else:
                    state = torch.load(str(self.path), map_location="cpu", weights_only=False)
                    state = state.state_dict() if hasattr(state, "state_dict") else state
                net = import_class(self.class_path or "", self.name, self.allow_modules)(**self.init)
                net.load_state_dict(state, strict=True)
        except JudgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bad file or class: one line, not a traceback
            raise JudgeError(f"synthcxr: judge {self.name!r}: cannot load {self.path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        if hasattr(net, "eval") and not self.path.suffix == ".pt2":
            net.eval()
        net = net.to(self.device)
        # one dry run: the network must give one output per label
        with torch.inference_mode():
            try:
                probe = net(torch.zeros(1, self.channels, self.size, self.size, device=self.device))
            except Exception as exc:  # noqa: BLE001
                raise JudgeError(f"synthcxr: judge {self.name!r}: the network fails on a (1, {self.channels}, {self.size}, {self.size}) input: {exc}") from exc
        if tuple(probe.shape) != (1, len(self.labels)):
            raise JudgeError(
                f"synthcxr: judge {self.name!r}: the network gives outputs of shape {tuple(probe.shape)} for one image, "
                f"but {len(self.labels)} labels are configured ({', '.join(self.labels)})"
            )
        return net

    def predict_raw(self, images: np.ndarray) -> np.ndarray:
        """The network's probabilities before the operating-point rescaling."""
        import torch

        images = as_images(images)
        out = np.empty((len(images), len(self.labels)), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(images), CHUNK):
                x = preprocess(images[start : start + CHUNK], self.size, self.normalize, self.channels).to(self.device)
                y = self._net(x).float()
                if self.activation == "sigmoid":
                    y = torch.sigmoid(y)
                elif self.activation == "softmax":
                    y = torch.softmax(y, dim=1)
                out[start : start + len(x)] = y.to("cpu", torch.float64).numpy()
        return out

    def predict(self, images: np.ndarray) -> np.ndarray:
        return op_norm(np.clip(self.predict_raw(images), 0.0, 1.0), self.thresholds)
