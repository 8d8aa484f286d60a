"""torchxrayvision disease judges: any ``xrv.models`` weight name, its exact preprocessing, and its
calibrated operating points.

What this trusts: torchxrayvision's weight files are whole pickled models (``torch.load(...,
weights_only=False)`` inside ``xrv.models``), and loading a pickle can run code. They are loaded
only from torchxrayvision's cache folder (``~/.torchxrayvision/models_data`` or the judge's
``cache_dir``) or from a file the user names in the spec, never downloaded by the audit, and each
file's SHA-256 is recorded in the report. Outputs a weight set was not trained on (label "" and
no operating point in ``xrv.models.model_urls``) predict randomly: they are masked.

Importing this module imports neither torch nor torchxrayvision.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import contextlib
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .base import JudgeError, as_images, file_sha256

DEFAULT_WEIGHTS = "densenet121-res224-all"
RELEASES = "https://github.com/mlmed/torchxrayvision/releases/download/v1/"

#: torchxrayvision's 18 output names, in its output order
XRV_LABELS: tuple[str, ...] = (
    "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
    "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia",
    "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum",
)  # fmt: skip
_CHEX = frozenset({2, 5, 6, 9, 11, 12, 13})
#: weight name -> indices of the outputs it was NOT trained on (from xrv.models.model_urls;
#: tests/test_xrv_judge.py checks this table against the installed torchxrayvision)
UNTRAINED: dict[str, frozenset[int]] = {
    "densenet121-res224-all": frozenset(),
    "densenet121-res224-nih": frozenset({14, 15, 16, 17}),
    "densenet121-res224-pc": frozenset({14, 16, 17}),
    "densenet121-res224-chex": _CHEX,
    "densenet121-res224-rsna": frozenset(range(18)) - {8, 16},
    "densenet121-res224-mimic_nb": _CHEX,
    "densenet121-res224-mimic_ch": _CHEX,
    "resnet50-res512-all": frozenset({14, 17}),
}
WEIGHT_NAMES: tuple[str, ...] = tuple(UNTRAINED)

ERR_WEIGHTS = "synthcxr: judge {judge!r}: unknown torchxrayvision weights {weights!r}; known: {known}"
ERR_MISSING = (
    "synthcxr: judge {judge!r}: torchxrayvision weights {weights!r} not found at {path} "
    "(the audit never downloads them); fetch once with `wget {url} -O {path}`, or point "
    "{table} path (or cache_dir) at a copy"
)


def judge_table(judge: str, prefix: str = "tool.synthcxr.", weights: str | None = None) -> str:
    """The spec table that configures a judge, as TOML that parses: the name quoted when it is not a
    bare key (``xrv:densenet121-res224-nih``), with the weights the name carries so quoting it keeps
    the variant the user named. prefix: "tool.synthcxr." in pyproject.toml, "" in a spec file."""
    import re

    key = judge if re.fullmatch(r"[A-Za-z0-9_-]+", judge) else '"' + judge.replace("\\", "\\\\").replace('"', '\\"') + '"'
    table = f"[{prefix}judges.{key}]"
    return f'{table} weights = "{weights}"' if weights else table


#: how many images one forward pass holds
CHUNK = 16


def trained_outputs(weights: str) -> tuple[str, ...]:
    if weights not in UNTRAINED:
        raise KeyError(weights)
    return tuple(label for i, label in enumerate(XRV_LABELS) if i not in UNTRAINED[weights])


def release_basename(weights: str) -> str:
    """The file name torchxrayvision stores these weights under (without importing it)."""
    return _RELEASE_FILES[weights]


_RELEASE_FILES = {
    "densenet121-res224-all": "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
    "densenet121-res224-nih": "nih-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
    "densenet121-res224-pc": "pc-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
    "densenet121-res224-chex": "chex-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
    "densenet121-res224-rsna": "kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
    "densenet121-res224-mimic_nb": "mimic_nb-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
    "densenet121-res224-mimic_ch": "mimic_ch-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
    "resnet50-res512-all": "pc-nih-rsna-siim-vin-resnet50-test512-e400-state.pt",
}


def default_cache_dir() -> Path:
    """torchxrayvision's own cache folder (xrv.utils.get_cache_dir(), without importing it)."""
    return Path(os.path.expanduser(os.path.join("~", ".torchxrayvision", "models_data")))


def import_xrv() -> Any:
    """Import torchxrayvision without its side effects: it silences every warning process-wide and
    puts its own folders at the front of sys.path; both are restored."""
    if "torchxrayvision" in sys.modules:
        return sys.modules["torchxrayvision"]
    filters = warnings.filters[:]
    path = sys.path[:]
    try:
        import torchxrayvision as xrv
    except ImportError as exc:
        raise JudgeError(
            "synthcxr: the torchxrayvision judge needs the torchxrayvision package: pip install 'pytest-synthcxr[real]'"
        ) from exc
    finally:
        _drop_catch_all_ignores(filters)
        sys.path[:] = path
    return xrv


def _drop_catch_all_ignores(before: list[Any]) -> None:
    """Remove the blanket "ignore every warning" filters added since `before` (xrv's
    ``warnings.filterwarnings("ignore")``); targeted filters other packages add are kept."""
    added_blanket = [
        f for f in warnings.filters if f not in before and f[0] == "ignore" and f[1] is None and f[2] is Warning and f[3] is None
    ]
    if added_blanket:
        warnings.filters[:] = [f for f in warnings.filters if f not in added_blanket or f in before]
        warnings._filters_mutated()  # type: ignore[attr-defined]


def run_chunks(model: Any, images: np.ndarray, resolution: int, device: str, head: Callable[[Any, Any], Any], chunk: int = CHUNK) -> list[np.ndarray]:
    """`head(model, x)` on each chunk of the images, preprocessed as torchxrayvision expects, under
    inference mode and with xrv's printed notes silenced; one float64 array per chunk."""
    import torch

    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), chunk):
            x = torch.from_numpy(xrv_preprocess(images[start : start + chunk], resolution)).to(device)
            with contextlib.redirect_stdout(io.StringIO()):  # xrv prints a normalisation heuristic
                y = head(model, x)
            parts.append(y.to("cpu", torch.float64).numpy())
    return parts


def xrv_preprocess(images: np.ndarray, size: int = 224) -> np.ndarray:
    """torchxrayvision's exact preprocessing: [0, 1] -> [-1024, 1024] (``xrv.datasets.normalize``
    of 8-bit-range values), XRayCenterCrop, XRayResizer(size) (skimage). float32 (N, 1, size, size)."""
    xrv = import_xrv()
    images = as_images(images)
    crop, resize = xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(size)
    out = np.empty((len(images), 1, size, size), dtype=np.float32)
    for i, image in enumerate(images):
        x = xrv.datasets.normalize(image.astype(np.float64) * 255.0, 255)[None]
        out[i] = resize(crop(x)) if x.shape[1:] != (size, size) else x
    return out


class XRVJudge:
    """A torchxrayvision classifier. ``mapping`` renames outputs onto the audit vocabulary."""

    def __init__(
        self,
        weights: str = DEFAULT_WEIGHTS,
        *,
        name: str | None = None,
        path: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        mapping: dict[str, str] | None = None,
        device: str = "cpu",
    ) -> None:
        self.name = name or f"xrv:{weights}"
        if weights not in UNTRAINED:
            raise JudgeError(ERR_WEIGHTS.format(judge=self.name, weights=weights, known=", ".join(WEIGHT_NAMES)))
        self.weights = weights
        basename = release_basename(weights)
        self.path = Path(path) if path is not None else Path(cache_dir or default_cache_dir()) / basename
        if not self.path.is_file():
            raise JudgeError(ERR_MISSING.format(judge=self.name, weights=weights, path=self.path, url=RELEASES + basename, table=judge_table(self.name)))
        self.mapping = dict(mapping or {})
        self._index = [i for i in range(len(XRV_LABELS)) if i not in UNTRAINED[weights]]
        self.outputs: tuple[str, ...] = tuple(self.mapping.get(XRV_LABELS[i], XRV_LABELS[i]) for i in self._index)
        self.masked: tuple[str, ...] = tuple(XRV_LABELS[i] for i in sorted(UNTRAINED[weights]))
        self.device = device
        self._model: Any = None

    @cached_property
    def sha256(self) -> str:
        return file_sha256(self.path)

    @property
    def fingerprint(self) -> str:
        return f"xrv:{self.weights}:{self.sha256}"

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "kind": "xrv",
            "weights": self.weights,
            "file": str(self.path),
            "sha256": self.sha256,
            "masked_untrained_outputs": list(self.masked),
            "mapping": self.mapping,
            "preprocessing": "[0,1] -> [-1024,1024], XRayCenterCrop, XRayResizer(224 or 512, skimage)",
            "device": self.device,
        }

    @property
    def resolution(self) -> int:
        return 512 if self.weights.startswith("resnet") else 224

    def _load(self) -> Any:
        if self._model is None:
            xrv = import_xrv()
            basename = release_basename(self.weights)
            filters = warnings.filters[:]
            try:
                if self.path.name == basename:
                    model = xrv.models.get_model(self.weights, cache_dir=str(self.path.parent))
                else:  # a user file under another name: show it to xrv under the release name
                    with tempfile.TemporaryDirectory() as tmp:
                        os.symlink(self.path.resolve(), Path(tmp) / basename)
                        model = xrv.models.get_model(self.weights, cache_dir=tmp)
            except Exception as exc:  # noqa: BLE001 - anything xrv raises on a bad file
                raise JudgeError(f"synthcxr: judge {self.name!r}: cannot load {self.path}: {exc}") from exc
            finally:
                _drop_catch_all_ignores(filters)
            model.eval()
            self._model = model.to(self.device)
        return self._model

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Calibrated scores (xrv's op_norm: each operating point at 0.5) of the trained outputs."""
        images = as_images(images)
        if len(images) == 0:
            return np.empty((0, len(self.outputs)), dtype=np.float64)
        scores = np.concatenate(run_chunks(self._load(), images, self.resolution, self.device, lambda model, x: model(x)))
        return np.clip(scores[:, self._index], 0.0, 1.0)


#: demographic attribute judges of torchxrayvision's baseline_models: kind -> (class path, weight
#: file, outputs in the model's output order, native resolution). Their weight folder is hard-coded
#: to ~/.torchxrayvision/models_data (no cache_dir argument).
ATTRIBUTE_MODELS: dict[str, tuple[str, str, tuple[str, ...], int]] = {
    "xrv-sex": ("mira:SexModel", "mira_sex_resnet-all_epoch_13-step_7125.ckpt", ("sex:male", "sex:female"), 224),
    "xrv-race": (
        "emory_hiti:RaceModel",
        "resnet_race_detection_val-loss_0.157_mimic_public.pt",
        ("race:Asian", "race:Black", "race:White"),
        320,
    ),
    # a TorchScript file (torch.jit.load), not a pickle; its one output is the age in years
    "xrv-age": ("riken:AgeModel", "baseline_models_riken_xray_age_every_model_age_senet154_v2_tl_26_ft_7_fp32.pt", ("age",), 320),
}


def attribute_outputs(kind: str) -> tuple[str, ...]:
    return ATTRIBUTE_MODELS[kind][2]


def attribute_weights_path(kind: str, path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path) if path is not None else default_cache_dir() / ATTRIBUTE_MODELS[kind][1]


class XRVAttributeJudge:
    """torchxrayvision's sex (MIRA) or race (Emory HITI) classifier: the probability of each class
    (softmax), for a demographic-fidelity check (does the image show the sex or race the prompt
    asked for?). No operating point is calibrated: the predicted class is the most probable one,
    and a probability above 0.5 is always the predicted class. The age model (RIKEN) scores one
    output, ``age``, in years (not a probability)."""

    def __init__(self, kind: str, *, name: str | None = None, path: str | os.PathLike[str] | None = None, device: str = "cpu") -> None:
        if kind not in ATTRIBUTE_MODELS:
            raise JudgeError(f"synthcxr: unknown torchxrayvision attribute judge {kind!r}; known: {', '.join(ATTRIBUTE_MODELS)}")
        self.kind = kind
        self.name = name or kind
        self.class_path, basename, self.outputs, self.resolution = ATTRIBUTE_MODELS[kind]
        self.path = attribute_weights_path(kind, path)
        if not self.path.is_file():
            url = RELEASES + basename
            raise JudgeError(ERR_MISSING.format(judge=self.name, weights=kind, path=self.path, url=url, table=judge_table(self.name)))
        self.device = device
        self._model: Any = None

    @cached_property
    def sha256(self) -> str:
        return file_sha256(self.path)

    @property
    def fingerprint(self) -> str:
        return f"{self.kind}:{self.sha256}"

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": f"torchxrayvision.baseline_models.{self.class_path.replace(':', '.')}",
            "file": str(self.path),
            "sha256": self.sha256,
            "outputs": list(self.outputs),
            "preprocessing": f"[0,1] -> [-1024,1024], XRayCenterCrop, XRayResizer({self.resolution}, skimage)",
            "device": self.device,
        }

    def _load(self) -> Any:
        if self._model is None:
            xrv = import_xrv()
            module_name, cls_name = self.class_path.split(":")
            basename = ATTRIBUTE_MODELS[self.kind][1]
            filters = warnings.filters[:]
            home = os.environ.get("HOME")
            try:
                import importlib

                cls = getattr(importlib.import_module(f"{xrv.__name__}.baseline_models.{module_name}"), cls_name)
                default = default_cache_dir() / basename
                with warnings.catch_warnings():  # the age model is TorchScript: torch.jit.load warns it is deprecated
                    warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
                    if self.path.resolve() == default.resolve():
                        model = cls()
                    else:  # these classes read only ~/.torchxrayvision: show them the user's file there
                        with tempfile.TemporaryDirectory() as tmp:
                            folder = Path(tmp) / ".torchxrayvision" / "models_data"
                            folder.mkdir(parents=True)
                            os.symlink(self.path.resolve(), folder / basename)
                            os.environ["HOME"] = tmp
                            model = cls()
            except Exception as exc:  # noqa: BLE001 - anything xrv raises on a bad file
                raise JudgeError(f"synthcxr: judge {self.name!r}: cannot load {self.path}: {exc}") from exc
            finally:
                if home is None:
                    os.environ.pop("HOME", None)
                else:
                    os.environ["HOME"] = home
                _drop_catch_all_ignores(filters)
            model.eval()
            self._model = model.to(self.device)
        return self._model

    def predict(self, images: np.ndarray) -> np.ndarray:
        import torch

        images = as_images(images)
        if len(images) == 0:
            return np.empty((0, len(self.outputs)), dtype=np.float64)
        if self.kind == "xrv-age":  # years: a regression output, neither a probability nor clipped
            parts = run_chunks(self._load(), images, self.resolution, self.device, lambda model, x: model(x).float().reshape(len(x), 1))
            return np.concatenate(parts)
        to_probability = torch.exp if self.kind == "xrv-race" else (lambda y: torch.softmax(y, dim=1))  # race: log-softmax
        parts = run_chunks(self._load(), images, self.resolution, self.device, lambda model, x: to_probability(model(x).float()))
        return np.clip(np.concatenate(parts), 0.0, 1.0)
