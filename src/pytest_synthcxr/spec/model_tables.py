"""Spec tables that describe models and judges: ``[tool.synthcxr.models.<alias>]`` and
``[tool.synthcxr.judges.<name>]``.

Aliases are data: a table here registers a generator (or overrides a built-in alias such as
``roentgen``) and a judge without any code. Validated with the rest of the spec (pydantic, one
error line); nothing heavy is imported.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Dtype = Literal["auto", "float32", "float16", "bfloat16"]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class ModelSpec(_Table):
    """A generator. Where its weights are: ``path`` (relative to the spec file), else the
    environment variable named by ``env``, else the Hugging Face hub id ``hub_id``."""

    #: diffusers | folder | phantom | the name of a ``pytest_synthcxr.generators`` entry point
    kind: str = "diffusers"
    path: str | None = None
    env: str | None = None
    hub_id: str | None = None
    revision: str | None = None
    #: shown when the weights cannot be found (e.g. how to request gated weights)
    note: str | None = None
    # generation settings (diffusers); None: the pipeline's own default
    steps: int | None = Field(default=None, ge=1, le=1000)
    guidance: float | None = Field(default=None, ge=0.0, le=100.0)
    height: int | None = Field(default=None, ge=8, le=4096, multiple_of=8)
    width: int | None = Field(default=None, ge=8, le=4096, multiple_of=8)
    #: auto: float16 on cuda, float32 elsewhere
    dtype: Dtype = "auto"
    #: a diffusers scheduler class name, e.g. "DPMSolverMultistepScheduler"
    scheduler: str | None = None
    negative_prompt: str | None = None
    #: images per forward pass (halved automatically on out-of-memory), or "probe": try 1, 2, 4, ...
    #: on the first requests and keep the fastest; default "probe" on cuda, 8 on mps, 4 on cpu
    batch_size: int | Literal["probe"] | None = None
    #: "sdpa": PyTorch scaled-dot-product attention (diffusers' default); "classic": AttnProcessor
    attention: Literal["sdpa", "classic"] = "sdpa"
    #: torch.compile the UNet (minutes of compiling on the first batches)
    compile: bool = False
    #: UNet and VAE in channels-last memory format
    channels_last: bool = False
    attention_slicing: bool = False
    vae_slicing: bool = False
    #: phantom preset (kind = "phantom")
    preset: str | None = None
    #: judge(s) used with this model when the spec's top-level ``judge`` is not given
    judge: str | list[str] | None = None
    #: passed unchanged to an entry-point generator
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        if value is None or value == "probe" or (type(value) is int and 1 <= value <= 1024):
            return value
        raise ValueError(f"must be an integer from 1 to 1024 or \"probe\", got {value!r}")


class JudgeSpec(_Table):
    """A judge: a torchxrayvision model, a TorchScript file, or a state-dict plus a class."""

    #: xrv | xrv-sex | xrv-race | xrv-age | torchscript | state-dict | phantom | phantom-attributes | a ``pytest_synthcxr.judges`` entry point
    kind: str = "xrv"
    #: xrv weight name (kind = "xrv"), e.g. "densenet121-res224-all"
    weights: str | None = None
    #: weight file: xrv release file, TorchScript file or state dict (relative to the spec file)
    path: str | None = None
    #: where torchxrayvision looks for its weight files (default: its own cache, ~/.torchxrayvision)
    cache_dir: str | None = None
    #: "package.module:ClassName" building the network of a state dict
    class_: str | None = Field(default=None, alias="class")
    init: dict[str, Any] = Field(default_factory=dict)
    #: output names, in the order of the network's outputs (required for torchscript / state-dict)
    labels: list[str] | None = Field(default=None, min_length=1)
    #: operating point(s) on the network's probability; mapped to 0.5 like torchxrayvision's op_norm
    threshold: float | list[float] = 0.5
    activation: Literal["sigmoid", "softmax", "none"] = "sigmoid"
    #: input preprocessing: center crop to a square, resize to size x size, scale, channels
    size: int = Field(default=224, ge=8, le=4096)
    channels: Literal[1, 3] = 1
    normalize: Literal["unit", "symmetric", "xrv", "imagenet"] = "unit"
    #: rename outputs onto the audit vocabulary, e.g. {"Lung Opacity" = "Consolidation"}
    map: dict[str, str] = Field(default_factory=dict)
    #: passed unchanged to an entry-point judge
    options: dict[str, Any] = Field(default_factory=dict)
    #: SHA-256 of pickle weight files you trust (``sha256sum <file>``): such a file loads without
    #: --synthcxr-allow-pickle (a pickle can run code when loaded)
    sha256: list[str] = Field(default_factory=list)
    #: modules (beyond torch.nn, torchvision.models, torchxrayvision, timm) that ``class`` may name:
    #: an explicit opt-in, since importing a module and calling a class can run any code
    allow_modules: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "JudgeSpec":
        import re

        for value in self.sha256:
            if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
                raise ValueError(f"'sha256' values must be 64 hexadecimal digits (sha256sum of the weight file), got {value[:80]!r}")
        for value in self.allow_modules:
            if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", value):
                raise ValueError(f"'allow_modules' values must be dotted module names, got {value[:80]!r}")
        if self.kind in ("torchscript", "state-dict"):
            if self.path is None:
                raise ValueError(f"a {self.kind} judge needs 'path' (its weight file)")
            if self.labels is None:
                raise ValueError(f"a {self.kind} judge needs 'labels' (one name per network output, in order)")
            if isinstance(self.threshold, list) and len(self.threshold) != len(self.labels):
                raise ValueError(f"'threshold' has {len(self.threshold)} values for {len(self.labels)} labels")
        if self.kind == "state-dict" and self.class_ is None:
            raise ValueError("a state-dict judge needs 'class' ('package.module:ClassName' building the network)")
        thresholds = self.threshold if isinstance(self.threshold, list) else [self.threshold]
        if not all(0.0 < t < 1.0 for t in thresholds):
            raise ValueError("'threshold' values must lie strictly between 0 and 1")
        return self
