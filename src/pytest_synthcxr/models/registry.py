"""Resolving what --synthcxr-model and the spec's ``judge`` name into generators and judges.

A model name is, in this order: a ``[tool.synthcxr.models.<name>]`` table of the spec (which may
also override a built-in alias), a built-in alias (``phantom``, ``phantom-fair``, ``phantom-biased``, ``roentgen``,
``roentgen-v2``), ``folder:<manifest.csv or folder>``, a ``pytest_synthcxr.generators`` entry
point, an existing path (a diffusers pipeline folder, a manifest CSV, or a folder holding
manifest.csv), or a Hugging Face hub id ``org/name``.

A judge name is a ``[tool.synthcxr.judges.<name>]`` table, ``phantom``, ``xrv`` (torchxrayvision
``densenet121-res224-all``), ``xrv:<weights>``, ``xrv-sex`` / ``xrv-race`` / ``xrv-age``
(torchxrayvision's demographic models: outputs ``sex:female``, ``race:White``, ..., ``age`` in
years), ``phantom-attributes`` (sex and age of phantoms), or a
``pytest_synthcxr.judges`` entry point.
Several judge names form a :class:`~pytest_synthcxr.models.judges.ensemble.JudgePanel`.

Everything :func:`check` does is cheap (no torch, diffusers or torchxrayvision import), so a bad
name, a missing file or a judge that cannot score what a check needs is a usage error before any
test runs. Entry points: ``factory(name, options, *, device, allow_pickle)`` returning a generator
(or judge) that follows :mod:`pytest_synthcxr.models.generators.base` (or :mod:`...judges.base`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .aliases import BUILTIN_MODELS, ModelError
from .device import resolve_device
from ..spec.model_tables import JudgeSpec, ModelSpec
from ..spec.vocabulary import FINDINGS, PROBES

GENERATOR_GROUP = "pytest_synthcxr.generators"
JUDGE_GROUP = "pytest_synthcxr.judges"
FOLDER_PREFIX = "folder:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

ROENTGEN_NOTE = (
    "RoentGen weights are gated to MIMIC-CXR-credentialed users: request access through "
    "https://github.com/StanfordMIMI/RoentGen, download the diffusers folder, then set "
    "SYNTHCXR_ROENTGEN_PATH or [tool.synthcxr.models.roentgen] path to it"
)
#: built-in aliases beyond the phantom ones: data, overridable by a spec table of the same name
ALIASES: dict[str, dict[str, Any]] = {
    # RoentGen model card: float32, 512 x 512, 75 steps, guidance 4, safety checker off
    "roentgen": {
        "kind": "diffusers",
        "hub_id": "StanfordAIMI/roent-gen-v1-0",
        "env": "SYNTHCXR_ROENTGEN_PATH",
        "steps": 75,
        "guidance": 4.0,
        "height": 512,
        "width": 512,
        "dtype": "float32",
        "judge": "xrv",
        "note": ROENTGEN_NOTE,
    },
    # RoentGen-v2: prompts carry age, sex and race; guidance 3, 75 steps
    "roentgen-v2": {
        "kind": "diffusers",
        "hub_id": "stanfordmimi/RoentGen-v2",
        "env": "SYNTHCXR_ROENTGEN_V2_PATH",
        "steps": 75,
        "guidance": 3.0,
        "judge": "xrv",
        "note": ROENTGEN_NOTE.replace("SYNTHCXR_ROENTGEN_PATH", "SYNTHCXR_ROENTGEN_V2_PATH").replace(".roentgen]", ".roentgen-v2]"),
    },
}


@dataclass(frozen=True)
class ModelPlan:
    """A resolved model name: what to build, from where (nothing loaded yet)."""

    name: str
    config: ModelSpec
    location: str | None = None  # local path or hub id
    local: bool = True


@dataclass(frozen=True)
class JudgePlan:
    name: str
    config: JudgeSpec
    outputs: tuple[str, ...] | None  # None: only known once built (entry points)
    masked: tuple[str, ...] = ()
    base: Path = field(default_factory=Path.cwd)


def _eps(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def _spec_dir(loaded: Any) -> Path:
    path = getattr(loaded, "path", None)
    return path.parent if path is not None else Path.cwd()


def _table_prefix(loaded: Any) -> str:
    """How the spec's own tables are written: "tool.synthcxr." in pyproject.toml, "" in a spec file."""
    table = getattr(loaded, "table", "[tool.synthcxr]")
    return table.strip("[]") + "." if table else ""


def _abs(path: str, base: Path) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else base / p


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text)


def known_models(spec: Any = None) -> list[str]:
    names = set(BUILTIN_MODELS) | set(ALIASES) | set(_eps(GENERATOR_GROUP))
    if spec is not None:
        names |= set(spec.models)
    return sorted(names)


def _unknown(name: str, source: str, spec: Any) -> ModelError:
    from .aliases import ERR_UNKNOWN_MODEL

    known = ", ".join(known_models(spec))
    text = ERR_UNKNOWN_MODEL.format(name=name, source=source, known=known)
    return ModelError(text + "; or a diffusers pipeline folder, a hub id org/name, or folder:<manifest.csv>")


def resolve_model(name: str, source: str, loaded: Any = None, *, allow_pickle: bool = False) -> ModelPlan:
    """Resolve a model name cheaply; raises ModelError with one line."""
    from .generators.diffusers import GeneratorError, check_pipeline_folder

    if _has_control(name):  # it would be printed to the terminal as it is: refused, shown escaped
        raise ModelError(f"synthcxr: model {name!r} (from {source}): names and paths may not hold control characters (such as ANSI escapes)")

    spec = getattr(loaded, "spec", None)
    base = _spec_dir(loaded)
    table = spec.models.get(name) if spec is not None else None
    if table is not None or name in ALIASES:
        data = dict(ALIASES.get(name, {}))
        if name in BUILTIN_MODELS:  # a table overriding a phantom alias (e.g. its judge)
            _, preset, judge = BUILTIN_MODELS[name]
            data = {"kind": "phantom", "preset": preset, "judge": judge}
        if table is not None:
            data.update(table.model_dump(exclude_unset=True, by_alias=True))
        if not any(data.get(k) for k in ("path", "env", "hub_id")):  # a table keyed by the path or hub id itself
            named = Path(os.path.expanduser(name))
            if named.exists():
                data["path"] = str(named.absolute())
            elif _HUB_ID.match(name) and data.get("kind", "diffusers") == "diffusers":
                data["hub_id"] = name
        config = ModelSpec.model_validate(data)
        return _locate(name, config, base, allow_pickle)
    if name in BUILTIN_MODELS:
        _, preset, judge = BUILTIN_MODELS[name]
        return ModelPlan(name, ModelSpec(kind="phantom", preset=preset, judge=judge))
    if name.startswith(FOLDER_PREFIX):
        return _locate(name, ModelSpec(kind="folder", path=name[len(FOLDER_PREFIX) :]), Path.cwd(), allow_pickle)
    if name in _eps(GENERATOR_GROUP):
        return ModelPlan(name, ModelSpec(kind=name))
    path = Path(os.path.expanduser(name))
    if path.exists():
        if path.is_file() and path.suffix.lower() != ".csv":
            raise ModelError(f"synthcxr: model {name!r}: {path.absolute()} is a file, not a diffusers pipeline folder or a manifest .csv")
        if path.is_file() or ((path / "manifest.csv").is_file() and not (path / "model_index.json").is_file()):
            return _locate(name, ModelSpec(kind="folder", path=str(path.absolute())), Path.cwd(), allow_pickle)
        try:
            check_pipeline_folder(path.absolute(), name, allow_pickle)
        except GeneratorError as exc:
            raise ModelError(str(exc)) from None
        return ModelPlan(name, ModelSpec(kind="diffusers"), str(path.absolute()), True)
    if _HUB_ID.match(name) and not name.startswith("."):
        return _locate(name, ModelSpec(kind="diffusers", hub_id=name), base, allow_pickle, tried=[f"no folder {path.absolute()}"])
    if os.sep in name or name.startswith((".", "~")):
        raise ModelError(f"synthcxr: model path not found: {path.absolute()} (from {source})")
    raise _unknown(name, source, spec)


def _locate(name: str, config: ModelSpec, base: Path, allow_pickle: bool, tried: list[str] | None = None) -> ModelPlan:
    from .generators.diffusers import GeneratorError, check_pipeline_folder
    from .generators.folder import find_manifest

    where = f"[tool.synthcxr.models.{name}]"
    if config.kind == "phantom":
        from .generators.phantom import PRESETS

        if (config.preset or "phantom") not in PRESETS:
            raise ModelError(f"synthcxr: {where} preset: unknown phantom preset {config.preset!r}; known: {', '.join(PRESETS)}")
        return ModelPlan(name, config)
    if config.kind == "folder":
        if config.path is None:
            raise ModelError(f"synthcxr: model {name!r}: a folder model needs 'path' (its manifest CSV)")
        manifest = find_manifest(_abs(config.path, base))
        if not manifest.is_file():
            raise ModelError(f"synthcxr: model {name!r}: manifest not found: {manifest}")
        return ModelPlan(name, config, str(manifest), True)
    if config.kind != "diffusers":
        if config.kind not in _eps(GENERATOR_GROUP):
            known = ", ".join(["diffusers", "folder", "phantom", *sorted(_eps(GENERATOR_GROUP))])
            raise ModelError(f"synthcxr: {where} kind: unknown generator kind {config.kind!r}; known kinds: {known}")
        return ModelPlan(name, config, config.path and str(_abs(config.path, base)), True)
    tried = list(tried or [])
    folder: Path | None = None
    if config.path is not None:
        folder = _abs(config.path, base)
        if not folder.exists():
            raise ModelError(f"synthcxr: model {name!r}: pipeline folder not found: {folder} (from {where} path)")
    elif config.env and os.environ.get(config.env):
        folder = Path(os.path.expanduser(os.environ[config.env])).absolute()
        if not folder.exists():
            raise ModelError(f"synthcxr: model {name!r}: pipeline folder not found: {folder} (from the environment variable {config.env})")
    if folder is not None:
        try:
            check_pipeline_folder(folder, name, allow_pickle)
        except GeneratorError as exc:
            raise ModelError(str(exc)) from None
        return ModelPlan(name, config, str(folder), True)
    if config.path is None:
        tried.append(f"{where} path not set")
    if config.env:
        tried.append(f"{config.env} not set")
    if config.hub_id is None:
        raise ModelError(f"synthcxr: model {name!r}: no weights to load ({'; '.join(tried)}); give {where} path, env or hub_id")
    if os.environ.get("HF_HUB_OFFLINE") and not _hub_cached(config.hub_id, config.revision):
        text = (
            f"synthcxr: model {name!r}: the hub id {config.hub_id!r} is not in the local Hugging Face cache and "
            f"HF_HUB_OFFLINE is set ({'; '.join(tried)})"
        )
        raise ModelError(text + (f"; {config.note}" if config.note else ""))
    return ModelPlan(name, config, config.hub_id, False)


def _hub_cached(repo_id: str, revision: str | None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache(repo_id, "model_index.json", revision=revision)
    return isinstance(found, str)


# -- judges ---------------------------------------------------------------------------------------


#: the attribute judge added to a default panel for perceived-subgroup bias items, per attribute
_PHANTOM_ATTRIBUTES = {"sex": "phantom-attributes", "age": "phantom-attributes"}


def perceived_attributes(spec: Any) -> list[str]:
    """Attributes the spec's plain-prompt bias items group images by (perceived subgroups)."""
    if spec is None:
        return []
    from ..checks import build_checks

    return list(dict.fromkeys(a for c in build_checks(spec) if c.family == "bias" for a in c.attributes_needed()))


def judge_names(plan: ModelPlan, spec: Any) -> list[str]:
    chosen = spec is not None and spec.judge is not None
    names = spec.judge if chosen else plan.config.judge
    if names is None:
        names = "phantom" if plan.config.kind == "phantom" else "xrv"
    if not names:  # judge = [] would leave every check without scores
        raise ModelError('synthcxr: the judge list is empty: name at least one judge, e.g. judge = "xrv" or judge = ["xrv", "covid"]')
    names = [names] if isinstance(names, str) else list(names)
    if not chosen:  # a default panel gains the attribute judges perceived-subgroup bias items need
        phantom = plan.config.kind == "phantom"
        for attribute in perceived_attributes(spec):
            extra = _PHANTOM_ATTRIBUTES.get(attribute) if phantom else f"xrv-{attribute}"
            if extra and extra not in names:
                names.append(extra)
    return names


def known_judges(spec: Any = None) -> list[str]:
    from .judges.xrv import WEIGHT_NAMES

    from .judges.xrv import ATTRIBUTE_MODELS

    names = {"phantom", "phantom-attributes", "xrv", *(f"xrv:{w}" for w in WEIGHT_NAMES), *ATTRIBUTE_MODELS, *_eps(JUDGE_GROUP)}
    if spec is not None:
        names |= set(spec.judges)
    return sorted(names)


def resolve_judge(name: str, loaded: Any = None, *, allow_pickle: bool = False) -> JudgePlan:
    """Resolve a judge name cheaply (checks its files exist); raises ModelError with one line."""
    from .judges import xrv

    if _has_control(name):
        raise ModelError(f"synthcxr: judge {name!r}: names may not hold control characters (such as ANSI escapes)")
    spec = getattr(loaded, "spec", None)
    base = _spec_dir(loaded)
    prefix = _table_prefix(loaded)
    where = xrv.judge_table(name, prefix)
    if spec is not None and name in spec.judges:
        config = spec.judges[name]
        if config.kind == "xrv" and config.weights is None and name.startswith("xrv:"):
            config = config.model_copy(update={"weights": name[4:]})  # the quoted table keeps the variant it names
    elif name in ("phantom", "phantom-attributes"):
        config = JudgeSpec(kind=name)
    elif name == "xrv" or name.startswith("xrv:"):
        config = JudgeSpec(kind="xrv", weights=name[4:] or None)
        where = f"judge {name!r}"
    elif name in xrv.ATTRIBUTE_MODELS:
        config = JudgeSpec(kind=name)
        where = f"judge {name!r}"
    elif name in _eps(JUDGE_GROUP):
        config = JudgeSpec(kind=name)
    else:
        raise ModelError(f"synthcxr: unknown judge {name!r}; known judges: {', '.join(known_judges(spec))}")
    mapping = dict(config.map)
    if config.kind == "phantom":
        return JudgePlan(name, config, FINDINGS + PROBES, base=base)
    if config.kind == "phantom-attributes":
        from .judges.phantom_attributes import OUTPUTS

        return JudgePlan(name, config, tuple(mapping.get(o, o) for o in OUTPUTS), base=base)
    if config.kind == "xrv":
        weights = config.weights or xrv.DEFAULT_WEIGHTS
        if weights not in xrv.UNTRAINED:
            raise ModelError(xrv.ERR_WEIGHTS.format(judge=name, weights=weights, known=", ".join(xrv.WEIGHT_NAMES)))
        basename = xrv.release_basename(weights)
        if config.path is not None:
            file = _abs(config.path, base)
        else:
            file = (_abs(config.cache_dir, base) if config.cache_dir else xrv.default_cache_dir()) / basename
        if not file.is_file():
            table = xrv.judge_table(name, prefix, weights if name.startswith("xrv:") else None)
            raise ModelError(xrv.ERR_MISSING.format(judge=name, weights=weights, path=file, url=xrv.RELEASES + basename, table=table))
        if config.path is not None or config.cache_dir is not None:  # a pickle the spec points at
            _check_pickle(file, name, config, allow_pickle)
        outputs = tuple(mapping.get(o, o) for o in xrv.trained_outputs(weights))
        masked = tuple(xrv.XRV_LABELS[i] for i in sorted(xrv.UNTRAINED[weights]))
        return JudgePlan(name, config, outputs, masked, base)
    if config.kind in xrv.ATTRIBUTE_MODELS:
        file = xrv.attribute_weights_path(config.kind, _abs(config.path, base) if config.path else None)
        if not file.is_file():
            basename = xrv.ATTRIBUTE_MODELS[config.kind][1]
            raise ModelError(
                xrv.ERR_MISSING.format(judge=name, weights=config.kind, path=file, url=xrv.RELEASES + basename, table=xrv.judge_table(name, prefix))
            )
        if config.path is not None and config.kind != "xrv-age":  # sex and race files are pickles; age is TorchScript
            _check_pickle(file, name, config, allow_pickle)
        return JudgePlan(name, config, tuple(mapping.get(o, o) for o in xrv.attribute_outputs(config.kind)), base=base)
    if config.kind in ("torchscript", "state-dict"):
        if config.path is None or not config.labels:
            missing = "path" if config.path is None else "labels"
            raise ModelError(f"synthcxr: {where}: a {config.kind} judge needs '{missing}'")
        file = _abs(config.path, base)
        if not file.is_file():
            raise ModelError(f"synthcxr: {where} path: weight file not found: {file}")
        if config.kind == "state-dict":
            from .trust import class_refusal

            refused = class_refusal(config.class_ or "", name, config.allow_modules)
            if refused:
                raise ModelError(refused)
            if file.suffix != ".safetensors":
                _check_pickle(file, name, config, allow_pickle)
        return JudgePlan(name, config, tuple(mapping.get(label, label) for label in config.labels), base=base)
    if config.kind in _eps(JUDGE_GROUP):
        return JudgePlan(name, config, None, base=base)
    known = ", ".join(["xrv", *xrv.ATTRIBUTE_MODELS, "torchscript", "state-dict", "phantom", "phantom-attributes", *sorted(_eps(JUDGE_GROUP))])
    raise ModelError(f"synthcxr: {where} kind: unknown judge kind {config.kind!r}; known kinds: {known}")


def _check_pickle(file: Path, name: str, config: JudgeSpec, allow_pickle: bool) -> None:
    """A pickle the spec names loads only when asked for or when its hash is trusted (see .trust)."""
    from .trust import pickle_refusal

    refused = pickle_refusal(file, name, allow_pickle=allow_pickle, trusted=config.sha256)
    if refused:
        raise ModelError(refused)


def _unique_outputs(plan: JudgePlan) -> JudgePlan:
    seen: set[str] = set()
    for output in plan.outputs or ():
        if output in seen:
            raise ModelError(f"synthcxr: [tool.synthcxr.judges.{plan.name}] map: two outputs would be named {output!r}")
        seen.add(output)
    return plan


def _needed_outputs(checks: list[Any]) -> dict[str, str]:
    """output -> the first check that needs it."""
    needed: dict[str, str] = {}
    for check in checks:
        for attr in ("finding", "probe"):
            value = getattr(check, attr, None)
            if isinstance(value, str) and value:
                needed.setdefault(value, check.nodename)
    return needed


def check(name: str, source: str, loaded: Any, *, allow_pickle: bool = False) -> ModelPlan:
    """Everything that can be checked before a test runs; raises ModelError with one line."""
    from ..checks import build_checks
    from .judges.ensemble import panel_outputs

    plan = resolve_model(name, source, loaded, allow_pickle=allow_pickle)
    spec = getattr(loaded, "spec", None)
    judges, unusable = [], []
    for j in judge_names(plan, spec):  # every unusable judge (a missing weight file...) in one message
        try:
            judges.append(_unique_outputs(resolve_judge(j, loaded, allow_pickle=allow_pickle)))
        except ModelError as exc:
            unusable.append(str(exc).removeprefix("synthcxr: "))
    if unusable:
        raise ModelError("synthcxr: " + (unusable[0] if len(unusable) == 1 else f"{len(unusable)} judges cannot be used: " + "; ".join(unusable)))
    checks = build_checks(spec) if spec is not None else []
    if all(j.outputs is not None for j in judges):
        outputs = set(panel_outputs([j.outputs or () for j in judges]))
        problems = []
        for output, check_name in _needed_outputs(checks).items():
            if output in outputs:
                continue
            masked = [j for j in judges if output in j.masked]
            names = ", ".join(j.name for j in judges)
            if masked:
                why = f"judge {masked[0].name!r} masks {output!r}: its weights ({masked[0].config.weights}) were not trained on it and predict randomly"
            else:
                why = f"judge(s) {names} do not score {output!r}"
            hint = (
                f"; add a probe judge, e.g. [{_table_prefix(loaded)}judges.covid] kind = \"torchscript\", path = ..., labels = [\"{output}\"], and judge = [\"{judges[0].name}\", \"covid\"]"
                if output in PROBES
                else "; pick weights or a judge that scores it, or leave it out of the spec's findings"
            )
            problems.append(f"{check_name} needs the output {output!r}, but {why}{hint}")
        if problems:  # every output the spec needs and no judge scores, in one message
            raise ModelError("synthcxr: " + (problems[0] if len(problems) == 1 else f"{len(problems)} outputs are not scored: " + "; ".join(problems)))
        for c in checks:  # demographic fidelity and perceived-subgroup bias need an attribute judge
            for attribute in c.attributes_needed():
                if not any(o == attribute or o.startswith(f"{attribute}:") for o in outputs):
                    shown = "'age'" if attribute == "age" else f"'{attribute}:*'"
                    hint = " (phantom-attributes reads sex and age only: use by = [\"sex\"] in the phantom world)" if plan.config.kind == "phantom" else ""
                    raise ModelError(
                        f"synthcxr: {c.nodename} needs {attribute} outputs ({shown}), but judge(s) "
                        f"{', '.join(j.name for j in judges)} score none; add an attribute judge, e.g. judge = [\"{judges[0].name}\", \"xrv-{attribute}\"]{hint}"
                    )
    if plan.config.kind == "folder" and checks:
        _check_manifest_prompts(plan, checks)
    return plan


def _check_manifest_prompts(plan: ModelPlan, checks: list[Any]) -> None:
    from .generators.diffusers import GeneratorError
    from .generators.folder import FolderGenerator

    try:
        gen = FolderGenerator(plan.location or "", name=plan.name)
    except GeneratorError as exc:
        raise ModelError(str(exc)) from None
    have = gen.prompts()
    missing: dict[str, str] = {}  # every prompt the spec needs and the manifest lacks, in one message
    for c in checks:
        for cell in c.cells():
            if cell.prompt not in have:
                missing.setdefault(cell.prompt, c.nodename)
    if missing:
        shown = "; ".join(f"{p!r} (needed by {n})" for p, n in list(missing.items())[:5])
        more = f"; and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ModelError(
            f"synthcxr: model {plan.name!r}: {gen.manifest} has no image for {len(missing)} prompt(s) the spec needs: {shown}{more}; "
            "`python -m pytest_synthcxr.prompts --spec <spec>` writes the full manifest template"
        )


# -- building ------------------------------------------------------------------------------------


def load_generator(name: str, loaded: Any = None, *, device: str = "auto", allow_pickle: bool = False) -> Any:
    from .generators.diffusers import DiffusersGenerator, GeneratorError
    from .generators.folder import FolderGenerator

    plan = resolve_model(name, f"model {name!r}", loaded, allow_pickle=allow_pickle)
    c = plan.config
    try:
        if c.kind == "phantom":
            from .generators.phantom import PhantomGenerator

            return PhantomGenerator(c.preset or "phantom")
        if c.kind == "folder":
            side = None if c.height and c.width else _judge_input_size(plan, loaded)
            return FolderGenerator(plan.location or "", name=name, height=c.height or side, width=c.width or side)
        if c.kind == "diffusers":
            return DiffusersGenerator(
                plan.location or "",
                name=name,
                device=resolve_device(device),
                dtype=c.dtype,
                steps=c.steps,
                guidance=c.guidance,
                height=c.height,
                width=c.width,
                scheduler=c.scheduler,
                negative_prompt=c.negative_prompt,
                batch_size=c.batch_size,
                attention=c.attention,
                compile=c.compile,
                channels_last=c.channels_last,
                revision=c.revision,
                allow_pickle=allow_pickle,
                attention_slicing=c.attention_slicing,
                vae_slicing=c.vae_slicing,
                note=c.note,
                lazy=True,  # a run the sample cache serves whole never loads the pipeline
            )
        factory = _eps(GENERATOR_GROUP)[c.kind].load()
        return factory(name, dict(c.options, path=plan.location), device=resolve_device(device), allow_pickle=allow_pickle)
    except GeneratorError as exc:
        raise ModelError(str(exc)) from None


def _judge_input_size(plan: ModelPlan, loaded: Any) -> int:
    """The largest input side of the model's judges: pre-generated images are resized to it, each
    on its own (never to the size of whichever image happened to be read first)."""
    from .judges import xrv

    sides = []
    for name in judge_names(plan, getattr(loaded, "spec", None)):
        try:
            c = resolve_judge(name, loaded, allow_pickle=True).config  # sizes only: nothing is loaded
        except ModelError:
            continue
        if c.kind in ("phantom", "phantom-attributes"):
            sides.append(224)
        elif c.kind == "xrv":
            sides.append(512 if (c.weights or "").startswith("resnet") else 224)
        elif c.kind in xrv.ATTRIBUTE_MODELS:
            sides.append(xrv.ATTRIBUTE_MODELS[c.kind][3])
        elif c.kind in ("torchscript", "state-dict"):
            sides.append(c.size)
    return max(sides, default=256)


def build_judge(plan: JudgePlan, *, device: str = "auto", allow_pickle: bool = False) -> Any:
    from .judges.base import JudgeError

    c = plan.config
    try:
        if c.kind == "phantom":
            from .judges.phantom import PhantomJudge

            return PhantomJudge(device=device)  # resolves "auto" when it first scores
        if c.kind == "phantom-attributes":
            from .judges.phantom_attributes import PhantomAttributeJudge

            return PhantomAttributeJudge(_abs(c.path, plan.base) if c.path else None, device=device, name=plan.name)
        dev = resolve_device(device)
        if c.kind == "xrv":
            from .judges.xrv import DEFAULT_WEIGHTS, XRVJudge

            judge = XRVJudge(
                c.weights or DEFAULT_WEIGHTS,
                name=plan.name,
                path=_abs(c.path, plan.base) if c.path else None,
                cache_dir=_abs(c.cache_dir, plan.base) if c.cache_dir else None,
                mapping=dict(c.map),
                device=dev,
            )
            judge._load()  # a bad file or device is a one-line error now, not inside an item
            return judge
        from .judges.xrv import ATTRIBUTE_MODELS, XRVAttributeJudge

        if c.kind in ATTRIBUTE_MODELS:
            judge = XRVAttributeJudge(c.kind, name=plan.name, path=_abs(c.path, plan.base) if c.path else None, device=dev)
            judge._load()
            return judge
        if c.kind in ("torchscript", "state-dict"):
            from .judges.torchscript import ProbeJudge

            return ProbeJudge(
                plan.name,
                _abs(c.path or "", plan.base),
                list(c.labels or []),
                kind=c.kind,
                class_path=c.class_,
                init=dict(c.init),
                threshold=c.threshold,
                activation=c.activation,
                size=c.size,
                channels=c.channels,
                normalize=c.normalize,
                mapping=dict(c.map),
                device=dev,
                allow_pickle=allow_pickle,
                allow_modules=tuple(c.allow_modules),
                trusted_sha256=tuple(c.sha256),
            )
        factory = _eps(JUDGE_GROUP)[c.kind].load()
        return factory(plan.name, dict(c.options), device=dev, allow_pickle=allow_pickle)
    except JudgeError as exc:
        raise ModelError(str(exc)) from None


def load_judge(name: str, loaded: Any = None, *, device: str = "auto", allow_pickle: bool = False) -> Any:
    """The judge of model `name` (the spec's ``judge``, else the model's): one judge, or a panel."""
    plan = resolve_model(name, f"model {name!r}", loaded, allow_pickle=allow_pickle)
    spec = getattr(loaded, "spec", None)
    members = [
        build_judge(resolve_judge(j, loaded, allow_pickle=allow_pickle), device=device, allow_pickle=allow_pickle)
        for j in judge_names(plan, spec)
    ]
    if len(members) == 1:
        return members[0]
    from .judges.ensemble import JudgePanel

    return JudgePanel(members)
