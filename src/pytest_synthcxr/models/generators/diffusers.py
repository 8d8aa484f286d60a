"""Stable-Diffusion-style diffusers pipelines (RoentGen and peers) as audit generators.

- Loads a local pipeline folder or a hub id offline-first (``local_files_only``), with the safety
  checker disabled explicitly (it blacks out chest X-rays). In an audit (``lazy=True``) it loads
  on first use: settings and fingerprint are read from the folder's config files, so a rerun the
  sample cache serves whole never loads the pipeline.
- One CPU ``torch.Generator`` per image, seeded from the pool, so image i depends only on
  (prompt i, seed i), not on the batch it was generated in (up to ~1e-6 of floating-point noise
  when the batch composition changes).
- Batches of ``batch_size`` images, halved automatically on out-of-memory; ``batch_size="probe"``
  (the default on cuda) tries 1, 2, 4, ... on the first requests and keeps the fastest size
  (``batch_probe``).
- GPU settings: ``dtype`` (float32 / float16 / bfloat16), ``attention`` ("sdpa": PyTorch's
  scaled-dot-product attention, diffusers' default; "classic": diffusers' AttnProcessor, explicit
  softmax(QK^T)V), ``compile`` (torch.compile of the UNet) and ``channels_last``. Each can move
  pixels (another kernel, another rounding), so each is in the fingerprint; their defaults add
  nothing to it, so caches filled before these settings existed stay valid. The batch size is in
  the settings only: images do not depend on it (see above).
- Weights in safetensors only unless ``allow_pickle``.
- Returns float32 (N, H, W) grayscale in [0, 1]; black, constant or NaN images are left as they
  come out, for the pool to count as invalid.

Importing this module does not import torch or diffusers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..device import dtype_problem, resolve_dtype
from .batch_probe import BatchProbe

ATTENTION = ("sdpa", "classic")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
ERR_NOT_PIPELINE = "synthcxr: model {name!r}: {path} is not a diffusers pipeline folder (no model_index.json)"
ERR_PICKLE = (
    "synthcxr: model {name!r}: {path} holds pickle weights only ({files}); pickle files can run code "
    "when loaded: convert them to safetensors or pass --synthcxr-allow-pickle"
)


class GeneratorError(Exception):
    """A generator that cannot be built or run; str() is the one line shown to the user."""


def pickle_only_components(folder: Path) -> list[tuple[Path, list[str]]]:
    """Components of a pipeline folder whose weights exist only as pickle files."""
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        names = [f.name for f in sub.iterdir() if f.is_file()]
        pickles = [n for n in names if n.endswith(PICKLE_SUFFIXES)]
        if pickles and not any(n.endswith(".safetensors") for n in names):
            found.append((sub, sorted(pickles)))
    return found


def check_pipeline_folder(folder: Path, name: str, allow_pickle: bool) -> None:
    """Cheap checks (no imports) of a local pipeline folder; raises GeneratorError."""
    if not (folder / "model_index.json").is_file():
        raise GeneratorError(ERR_NOT_PIPELINE.format(name=name, path=folder))
    check_model_index(folder / "model_index.json", name)
    if not allow_pickle:
        bad = pickle_only_components(folder)
        if bad:
            sub, files = bad[0]
            raise GeneratorError(ERR_PICKLE.format(name=name, path=sub, files=", ".join(files)))


def check_model_index(path: Path, name: str) -> None:
    """model_index.json must be a JSON object naming its pipeline class and components (as lists
    [library, class]); anything else is one line now, not a traceback inside the first item.
    The message describes the file, never prints it."""
    import json

    where = f"synthcxr: model {name!r}: {path}"
    try:
        if path.stat().st_size > 1 << 20:
            raise GeneratorError(f"{where}: larger than 1 MiB; not a diffusers model_index.json")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise GeneratorError(f"{where}: not UTF-8 text; a diffusers model_index.json is JSON") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        why = f"{exc.msg} at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise GeneratorError(f"{where}: not valid JSON ({why})") from None
    except OSError as exc:
        raise GeneratorError(f"{where}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise GeneratorError(f"{where}: a JSON {type(data).__name__}, not an object with '_class_name' and the pipeline's components")
    if "_class_name" in data and (not isinstance(data["_class_name"], str) or not data["_class_name"].isidentifier()):
        raise GeneratorError(f"{where}: '_class_name' must name the pipeline class (e.g. \"StableDiffusionPipeline\")")
    for key, value in data.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict) or (isinstance(value, list) and not (len(value) == 2 and all(v is None or isinstance(v, str) for v in value))):
            shown = key if key.isidentifier() else "(a key that is not a name)"
            raise GeneratorError(f"{where}: component {shown[:60]!r} must be [library, class] or null")


def _quiet() -> None:
    """No progress bars or info chatter from diffusers/transformers inside pytest's output."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class DiffusersGenerator:
    """A diffusers text-to-image pipeline; ``source`` is a local folder or a hub id.

    Python-only knobs (not spec keys): ``compile_backend`` (torch.compile's backend when
    ``compile``; the tests use "eager", which skips code generation) and ``probe_limit`` (the
    largest batch the probe tries; the pool's request size bounds it too). The probe's record
    is ``self.probe`` (``.rates``, ``.chosen``, ``.summary()``)."""

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        name: str | None = None,
        device: str = "cpu",
        dtype: str = "auto",
        steps: int | None = None,
        guidance: float | None = None,
        height: int | None = None,
        width: int | None = None,
        scheduler: str | None = None,
        negative_prompt: str | None = None,
        batch_size: int | str | None = None,
        attention: str = "sdpa",
        compile: bool = False,
        channels_last: bool = False,
        revision: str | None = None,
        allow_pickle: bool = False,
        attention_slicing: bool = False,
        vae_slicing: bool = False,
        note: str | None = None,
        lazy: bool = False,
        compile_backend: str = "inductor",
        probe_limit: int = 256,
    ) -> None:
        self.source = str(source)
        self.local = Path(self.source).is_dir()
        self.name = name or self.source
        self.device = device
        problem = dtype_problem(dtype, device)
        if problem:
            raise GeneratorError(f"synthcxr: model {self.name!r}: {problem}")
        self.dtype_name = resolve_dtype(dtype, device)
        if attention not in ATTENTION:
            raise GeneratorError(f"synthcxr: model {self.name!r}: attention must be one of {', '.join(ATTENTION)}, got {attention!r}")
        self.attention = attention
        self.compile_backend = compile_backend if compile else None
        self.channels_last = bool(channels_last)
        self.steps = steps
        self.guidance = guidance
        self.height = height
        self.width = width
        self.scheduler_name = scheduler
        self.negative_prompt = negative_prompt
        if batch_size is None:  # a GPU's best batch depends on its memory and the model: measure it
            batch_size = "probe" if device.startswith("cuda") else (8 if device.startswith("mps") else 4)
        if batch_size != "probe" and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise GeneratorError(f"synthcxr: model {self.name!r}: batch_size must be a positive integer or \"probe\", got {batch_size!r}")
        self.batch_setting = batch_size
        self.probe = BatchProbe(limit=probe_limit) if batch_size == "probe" else None
        self.batch_size = 1 if batch_size == "probe" else int(batch_size)  # the probe's choice once it has one
        self.revision = revision
        self.allow_pickle = allow_pickle
        self.note = note
        if self.local:
            check_pipeline_folder(Path(self.source), self.name, allow_pickle)
        self._slicing = (attention_slicing, vae_slicing)
        self._pipe: Any = None
        self._load_failed: GeneratorError | None = None
        self._fingerprint: str | None = None
        self._folder_found: Path | None = None
        if not lazy:  # lazy: loaded on first use (a run served by the sample cache never loads it)
            self._pipe = self._load(*self._slicing)

    @property
    def pipe(self) -> Any:
        """The diffusers pipeline, loaded on first use; raises GeneratorError with one line."""
        if self._pipe is None:
            if self._load_failed is not None:  # once is enough (a retry may be another hub request)
                raise self._load_failed
            try:
                self._pipe = self._load(*self._slicing)
            except GeneratorError as exc:
                self._load_failed = exc
                raise
        return self._pipe

    # -- loading ---------------------------------------------------------------------------------

    def _load(self, attention_slicing: bool, vae_slicing: bool) -> Any:
        try:
            import diffusers
            import torch
        except ImportError as exc:
            raise GeneratorError(f"synthcxr: model {self.name!r} needs diffusers and transformers: pip install 'pytest-synthcxr[real]'") from exc
        _quiet()
        kwargs: dict[str, Any] = {
            "safety_checker": None,  # the SD safety checker blacks out chest X-rays
            "feature_extractor": None,
            "requires_safety_checker": False,
            "use_safetensors": None if self.allow_pickle else True,
        }
        # diffusers renamed torch_dtype to dtype (0.3x); older releases ignore an unknown dtype=
        new_api = hasattr(getattr(diffusers.utils, "deprecation_utils", None), "_resolve_dtype")
        kwargs["dtype" if new_api else "torch_dtype"] = getattr(torch, self.dtype_name)
        if self.revision:
            kwargs["revision"] = self.revision
        pipe = None
        try:
            pipe = diffusers.DiffusionPipeline.from_pretrained(self.source, local_files_only=True, **kwargs)
        except Exception as exc:  # noqa: BLE001 - rephrased below, one line
            first = exc
            if not self.local and not os.environ.get("HF_HUB_OFFLINE"):
                try:  # not in the local cache: try the hub (gated weights need a token)
                    pipe = diffusers.DiffusionPipeline.from_pretrained(self.source, **kwargs)
                except Exception as exc2:  # noqa: BLE001
                    first = exc2
            if pipe is None:
                raise GeneratorError(self._load_error(first)) from first
        if self.scheduler_name:
            cls = getattr(diffusers, self.scheduler_name, None)
            if cls is None or not hasattr(cls, "from_config"):
                raise GeneratorError(f"synthcxr: model {self.name!r}: unknown diffusers scheduler {self.scheduler_name!r}")
            pipe.scheduler = cls.from_config(pipe.scheduler.config)
        if getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None
        pipe.set_progress_bar_config(disable=True)
        if attention_slicing and hasattr(pipe, "enable_attention_slicing"):
            pipe.enable_attention_slicing()
        if vae_slicing and getattr(pipe, "vae", None) is not None:
            pipe.vae.enable_slicing()
        try:
            pipe = pipe.to(self.device)
        except (RuntimeError, AssertionError, ValueError) as exc:  # e.g. cuda asked for, none present
            raise GeneratorError(f"synthcxr: model {self.name!r}: cannot move the pipeline to device {self.device!r}: {exc}") from exc
        self._tune(pipe)
        return pipe

    def _tune(self, pipe: Any) -> None:
        """Attention kernels, memory format and compilation of the loaded pipeline (in this
        order: torch.compile traces the module as it will run)."""
        import torch

        unet, vae = getattr(pipe, "unet", None), getattr(pipe, "vae", None)
        if (self.attention != "sdpa" or self.channels_last or self.compile_backend) and unet is None:
            raise GeneratorError(
                f"synthcxr: model {self.name!r}: attention = \"classic\", channels_last and compile act on a UNet; "
                f"this {type(pipe).__name__} has none (leave them at their defaults)"
            )
        if self.attention == "classic":  # "sdpa" is diffusers' own default: left as loaded
            from diffusers.models.attention_processor import AttnProcessor

            for module in (unet, vae):
                if module is not None and hasattr(module, "set_attn_processor"):
                    module.set_attn_processor(AttnProcessor())
        if self.channels_last:
            for module in (unet, vae):
                if module is not None:
                    module.to(memory_format=torch.channels_last)
        if self.compile_backend:
            pipe.unet = torch.compile(unet, backend=self.compile_backend)

    def _load_error(self, exc: BaseException) -> str:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.local:
            where = f"the folder {self.source}"
        else:
            where = f"the hub id {self.source!r} (not in the local Hugging Face cache, and no download"
            where += " because HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else " succeeded)"
        text = f"synthcxr: model {self.name!r}: cannot load a diffusers pipeline from {where}: {reason}"
        if "safetensors" in reason.lower() and not self.allow_pickle:
            text += "; pickle weights load only with --synthcxr-allow-pickle"
        return text + (f"; {self.note}" if self.note else "")

    # -- identity --------------------------------------------------------------------------------

    def _speed_settings(self) -> dict[str, Any]:
        """Settings that pick other kernels: they can move pixels, so they are fingerprinted, but
        only where they differ from the defaults (older fingerprints stay valid)."""
        chosen = {"attention": self.attention, "compile": self.compile_backend or False, "channels_last": self.channels_last}
        return {k: v for k, v in chosen.items() if v != {"attention": "sdpa", "compile": False, "channels_last": False}[k]}

    def _call_settings(self) -> dict[str, Any]:
        side = None if self.height and self.width else self._default_side()
        return {
            "steps": self.steps,
            "guidance": self.guidance,
            "height": self.height or side,
            "width": self.width or side,
            "scheduler": self._scheduler_class(),
            "dtype": self.dtype_name,
            "negative_prompt": self.negative_prompt,
        }

    # What shapes the images is read from the pipeline's config files where they are on disk, so
    # the fingerprint (and with it every cache lookup) needs no loaded pipeline; the loaded
    # pipeline is the fallback, and tests check that both agree.

    def _folder(self) -> Path | None:
        """The pipeline's files: the local folder, or the hub id's snapshot in the Hugging Face
        cache (None while it is not there: not remembered, the download may come next)."""
        if self._folder_found is None:
            self._folder_found = Path(self.source) if self.local else self._snapshot_folder()
        return self._folder_found

    def _config(self, *parts: str) -> dict[str, Any] | None:
        folder = self._folder()
        path = folder.joinpath(*parts) if folder is not None else None
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _scheduler_class(self) -> str:
        if self._pipe is None:
            if self.scheduler_name:
                return self.scheduler_name
            entry = (self._config("model_index.json") or {}).get("scheduler")
            if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str):
                return entry[1]
        return type(self.pipe.scheduler).__name__

    def _default_side(self) -> int | None:
        if self._pipe is None:
            index = self._config("model_index.json")
            if index is not None and "unet" not in index:
                return None  # no UNet (SD3, PixArt, Flux...): the loaded pipeline has none either
            unet, vae = self._config("unet", "config.json"), self._config("vae", "config.json")
            if unet is not None and vae is not None and isinstance(unet.get("sample_size"), int) and vae.get("block_out_channels"):
                return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)  # the pipelines' vae_scale_factor
        unet = getattr(self.pipe, "unet", None)
        scale = getattr(self.pipe, "vae_scale_factor", None)
        if unet is not None and scale:
            return int(unet.config.sample_size) * int(scale)
        return None

    @property
    def settings(self) -> dict[str, Any]:
        from importlib.metadata import version

        pipeline = (self._config("model_index.json") or {}).get("_class_name") if self._pipe is None else None
        if isinstance(pipeline, list) and pipeline and isinstance(pipeline[-1], str):
            pipeline = pipeline[-1]  # a custom pipeline: [module, class]
        return {
            "kind": "diffusers",
            "source": self.source,
            "pipeline": pipeline if isinstance(pipeline, str) else type(self.pipe).__name__,
            **self._call_settings(),
            "safety_checker": "disabled",
            "attention": self.attention,
            "compile": self.compile_backend or False,
            "channels_last": self.channels_last,
            "device": self.device,
            # what was asked ("probe" or a number): the probe's choice depends on timing, and the
            # report must not (images do not depend on the batch size)
            "batch_size": self.batch_setting,
            "seeding": "one CPU torch.Generator per image",
            "diffusers": version("diffusers"),
            "torch": version("torch"),
        }

    @property
    def fingerprint(self) -> str:
        """sha256 over the pipeline's files (configs and weights) and the settings that shape images."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            folder = self._folder()
            if folder is None and not self.local:  # not downloaded yet: load (download), then hash its files
                _ = self.pipe
                folder = self._folder()
            if folder is not None and folder.is_dir():
                for f in sorted(p for p in folder.rglob("*") if p.is_file()):
                    digest.update(str(f.relative_to(folder)).encode() + b"\0")
                    with open(f, "rb") as fh:
                        for block in iter(lambda: fh.read(1 << 20), b""):
                            digest.update(block)
            else:
                digest.update(self.source.encode())
            digest.update(json.dumps({**self._call_settings(), **self._speed_settings(), "device": self.device.split(":")[0]}, sort_keys=True).encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def _snapshot_folder(self) -> Path | None:
        """The local Hugging Face cache folder a hub id was loaded from (its files are hashed)."""
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(self.source, revision=self.revision, local_files_only=True))
        except Exception:  # noqa: BLE001 - no snapshot: the fingerprint falls back to the id
            return None

    # -- generation ------------------------------------------------------------------------------

    def _run(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        import torch

        kwargs: dict[str, Any] = {
            "generator": [torch.Generator("cpu").manual_seed(int(s)) for s in seeds],
            "output_type": "np",
        }
        if self.steps is not None:
            kwargs["num_inference_steps"] = self.steps
        if self.guidance is not None:
            kwargs["guidance_scale"] = self.guidance
        if self.height is not None:
            kwargs["height"] = self.height
        if self.width is not None:
            kwargs["width"] = self.width
        if self.negative_prompt is not None:
            kwargs["negative_prompt"] = [self.negative_prompt] * len(prompts)
        with torch.inference_mode():
            images = np.asarray(self.pipe(prompt=list(prompts), **kwargs).images, dtype=np.float32)
        if images.ndim == 4:  # (N, H, W, C): RGB to gray
            images = images.mean(axis=3) if images.shape[3] > 1 else images[..., 0]
        # 8 bits, as every pipeline saves its images: the judged image is exactly the cached PNG
        # (NaN stays NaN, so broken samples are still caught as invalid)
        return (np.round(np.clip(images, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """float32 (N, H, W) in [0, 1]; image i depends only on (prompts[i], seeds[i])."""
        import time

        if len(prompts) != len(seeds):
            raise ValueError("one seed per prompt")
        if prompts:
            _ = self.pipe  # loaded before any batch is timed
        parts: list[np.ndarray] = []
        start = 0
        while start < len(prompts):
            size, timed = self._next_batch(len(prompts) - start, start == 0)
            began = time.perf_counter()
            try:
                parts.append(self._run(prompts[start : start + size], seeds[start : start + size]))
            except Exception as exc:  # only out-of-memory is retried; the rest is rephrased or raised
                if not _is_oom(exc) or size == 1:
                    error = self._run_error(exc)
                    if error is exc:
                        raise
                    raise error from exc
                if self.probe is not None and not self.probe.done:
                    self.batch_size = self.probe.out_of_memory(size)
                else:
                    self.batch_size = max(1, size // 2)
                _empty_cache()
                continue
            if timed and self.probe is not None:
                _synchronize(self.device)
                self.probe.record(size, time.perf_counter() - began)
                if self.probe.done:
                    self.batch_size = self.probe.chosen or 1
            start += size
        if not parts:
            side = self._default_side() or 8
            return np.empty((0, self.height or side, self.width or side), dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def _next_batch(self, remaining: int, fresh_request: bool) -> tuple[int, bool]:
        """(images in the next batch, whether the probe times it)."""
        if self.probe is not None and not self.probe.done:
            size, timed = self.probe.next_batch(remaining, fresh_request)
            if self.probe.done:
                self.batch_size = self.probe.chosen or 1
            return size, timed
        return min(self.batch_size, remaining), False

    def _run_error(self, exc: BaseException) -> BaseException:
        """A dtype the device's kernels lack, or a torch.compile that fails, as one line; any
        other error unchanged."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "not implemented for" in text and ("'Half'" in text or "'BFloat16'" in text):
            return GeneratorError(
                f"synthcxr: model {self.name!r}: dtype {self.dtype_name} is not supported on device {self.device!r} by this torch build "
                f"({text[:200]}); use dtype = \"float32\" (or \"bfloat16\" on a CPU)"
            )
        if self.compile_backend and type(exc).__module__.startswith(("torch._dynamo", "torch._inductor")):
            return GeneratorError(f"synthcxr: model {self.name!r}: torch.compile of the UNet failed ({text[:200]}); set compile = false")
        return exc


def _synchronize(device: str) -> None:
    """A GPU runs asynchronously: wait for it before reading the clock."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize(device)


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
