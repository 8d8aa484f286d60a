"""The diffusers generator on the tiny random pipeline in fixtures/tiny-sd (32 x 32, 2 steps)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
# loaded at collection, before any pytester run: pytester forgets modules a run imports, and the
# C extensions under these (tokenizers, safetensors) cannot be imported twice in one process
from diffusers import StableDiffusionPipeline  # noqa: E402, F401
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402, F401

from models_support import TINY_SD, make_torchscript_probe, small_spec  # noqa: E402

from pytest_synthcxr.models.generators.diffusers import DiffusersGenerator, GeneratorError  # noqa: E402

PROMPTS = ["Pleural effusion.", "Hispanic female. Pleural effusion.", "No acute cardiopulmonary process."]
SEEDS = [11, 22, 33]


@pytest.fixture(scope="module")
def tiny():
    return DiffusersGenerator(TINY_SD, name="tiny", device="cpu", steps=2, guidance=4.0, batch_size=3)


def test_images_are_gray_float32_in_unit_range(tiny):
    images = tiny.generate(PROMPTS, SEEDS)
    assert images.shape == (3, 32, 32) and images.dtype == np.float32
    assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    assert images.std(axis=(1, 2)).min() > 0  # not blacked out: no safety checker


def test_an_image_depends_on_its_own_prompt_and_seed_only(tiny):
    together = tiny.generate(PROMPTS, SEEDS)
    np.testing.assert_array_equal(together, tiny.generate(PROMPTS, SEEDS))  # repeatable bit for bit
    tiny.batch_size = 1
    try:
        alone = tiny.generate(PROMPTS, SEEDS)
    finally:
        tiny.batch_size = 3
    # batch composition changes CPU kernels' rounding by ~1e-6, nothing more
    np.testing.assert_allclose(alone, together, atol=1e-4)
    swapped = tiny.generate(PROMPTS[::-1], SEEDS[::-1])[::-1]
    np.testing.assert_allclose(swapped, together, atol=1e-4)
    assert not np.allclose(tiny.generate(PROMPTS[:1], [12]), together[:1], atol=1e-3)


def test_out_of_memory_halves_the_batch(tiny, monkeypatch):
    original = tiny._run
    sizes = []

    def run(prompts, seeds):
        sizes.append(len(prompts))
        if len(prompts) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(prompts, seeds)

    monkeypatch.setattr(tiny, "_run", run)
    monkeypatch.setattr(tiny, "batch_size", 3)
    images = tiny.generate(PROMPTS, SEEDS)
    assert images.shape == (3, 32, 32) and sizes == [3, 1, 1, 1] and tiny.batch_size == 1


def test_settings_and_fingerprint_record_what_shapes_the_images(tiny):
    s = tiny.settings
    assert s["pipeline"] == "StableDiffusionPipeline" and s["safety_checker"] == "disabled"
    assert (s["steps"], s["guidance"], s["height"], s["width"], s["dtype"]) == (2, 4.0, 32, 32, "float32")
    assert s["scheduler"] == "DDIMScheduler" and s["seeding"] == "one CPU torch.Generator per image"
    import torch

    other = DiffusersGenerator(TINY_SD, device="cpu", steps=2, guidance=1.0, scheduler="EulerDiscreteScheduler", dtype="bfloat16")
    assert other.settings["scheduler"] == "EulerDiscreteScheduler" and other.settings["dtype"] == "bfloat16"
    assert other.pipe.unet.dtype == torch.bfloat16 and tiny.pipe.unet.dtype == torch.float32
    assert other.fingerprint != tiny.fingerprint and len(tiny.fingerprint) == 64


def test_unknown_scheduler_is_one_clear_error():
    with pytest.raises(GeneratorError, match="unknown diffusers scheduler 'NoSuchScheduler'"):
        DiffusersGenerator(TINY_SD, device="cpu", scheduler="NoSuchScheduler")


@pytest.fixture
def pickled_pipeline(tmp_path):
    """A copy of the tiny pipeline whose UNet weights are a pickle (.bin) file."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled-sd"
    shutil.copytree(TINY_SD, folder)
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(unet)), str(unet.with_suffix(".bin")))
    unet.unlink()
    return folder


def _one_error(result):
    text = result.stderr.str() + result.stdout.str()
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, text
    return errors[0]


@pytest.fixture
def probe_spec(pytester):
    """A spec auditing one finding with a TorchScript probe judge; model settings for the tiny pipeline."""
    make_torchscript_probe(pytester.path / "probe.pt", 2)
    text = "judge = 'probe'\n" + small_spec() + (
        "[judges.probe]\nkind = 'torchscript'\npath = 'probe.pt'\nlabels = ['Effusion', 'COVID-19']\n"
        f"[models.'{TINY_SD}']\nsteps = 2\nguidance = 3.0\n"
    )
    pytester.makefile(".toml", synthcxr=text)
    return text


def test_end_to_end_audit_of_the_tiny_pipeline_writes_a_report(pytester, probe_spec):
    result = pytester.runpytest(f"--synthcxr-model={TINY_SD}", "--synthcxr-device=cpu", "--synthcxr-json=audit.json", "--synthcxr-report=audit.html")
    outcomes = result.parseoutcomes()
    assert sum(outcomes.get(k, 0) for k in ("passed", "failed")) == 4, result.stdout.str()
    assert "error" not in outcomes and "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*synthcxr audit*", "*images generated (0 invalid)*", "report written: *audit.html"])
    data = json.loads((pytester.path / "audit.json").read_text())
    assert "StableDiffusionPipeline" in json.dumps(data)  # the generator's settings are recorded
    assert (pytester.path / "audit.html").stat().st_size > 1000


def test_roentgen_alias_uses_the_environment_variable(pytester, probe_spec, monkeypatch):
    monkeypatch.setenv("SYNTHCXR_ROENTGEN_PATH", str(TINY_SD))
    result = pytester.runpytest("--synthcxr-model=roentgen", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*4 tests collected*"])


def test_roentgen_without_weights_says_how_to_get_them(pytester, probe_spec, monkeypatch):
    monkeypatch.delenv("SYNTHCXR_ROENTGEN_PATH", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(pytester.path / "hf"))
    result = pytester.runpytest("--synthcxr-model=roentgen")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = _one_error(result)
    assert "'StanfordAIMI/roent-gen-v1-0' is not in the local Hugging Face cache" in line
    assert "SYNTHCXR_ROENTGEN_PATH not set" in line and "MIMIC-CXR-credentialed" in line
    assert "https://github.com/StanfordMIMI/RoentGen" in line


def test_spec_path_overrides_the_environment_for_an_alias(pytester, probe_spec, monkeypatch):
    monkeypatch.setenv("SYNTHCXR_ROENTGEN_PATH", str(TINY_SD))
    pytester.makefile(".toml", synthcxr=probe_spec + "[models.roentgen]\npath = 'missing-roentgen'\n")
    result = pytester.runpytest("--synthcxr-model=roentgen")
    line = _one_error(result)
    assert "pipeline folder not found" in line and "missing-roentgen" in line and "[tool.synthcxr.models.roentgen] path" in line


@pytest.mark.parametrize(
    "model, fragment",
    [
        ("./nowhere", "model path not found: "),
        ("empty-dir", "is not a diffusers pipeline folder (no model_index.json)"),
        ("someorg/not-cached", "the hub id 'someorg/not-cached' is not in the local Hugging Face cache"),
    ],
)
def test_bad_model_locations_are_one_clear_error(pytester, probe_spec, monkeypatch, model, fragment):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(pytester.path / "hf"))
    (pytester.path / "empty-dir").mkdir()
    result = pytester.runpytest(f"--synthcxr-model={model}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert fragment in _one_error(result)


def test_pickle_weights_need_the_flag(pytester, probe_spec, pickled_pipeline):
    result = pytester.runpytest(f"--synthcxr-model={pickled_pipeline}", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = _one_error(result)
    assert "holds pickle weights only (diffusion_pytorch_model.bin)" in line and "--synthcxr-allow-pickle" in line
    result = pytester.runpytest(f"--synthcxr-model={pickled_pipeline}", "--synthcxr-allow-pickle", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*4 tests collected*"])


def test_pickle_pipeline_loads_with_the_flag(pickled_pipeline):
    gen = DiffusersGenerator(pickled_pipeline, device="cpu", steps=1, allow_pickle=True)
    assert gen.generate(["Cardiomegaly."], [1]).shape == (1, 32, 32)
    with pytest.raises(GeneratorError, match="pickle weights only"):
        DiffusersGenerator(pickled_pipeline, device="cpu")


def test_make_script_builds_a_loadable_pipeline(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_tiny_sd", TINY_SD.parent / "make_tiny_sd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = module.build(tmp_path / "sd")
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert names == {p.relative_to(TINY_SD).as_posix() for p in TINY_SD.rglob("*") if p.is_file()}
    assert sum((folder / n).stat().st_size for n in names) < 3_000_000


def test_a_pipeline_that_fails_to_load_stops_the_run_with_one_line(pytester, probe_spec):
    broken = pytester.path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    result = pytester.runpytest("--synthcxr-model=broken")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text
    result.stdout.fnmatch_lines(["*Exit: synthcxr: model 'broken': cannot load a diffusers pipeline from the folder *broken: *"])


def test_a_hub_id_loads_offline_from_the_local_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from pytest_synthcxr.models import registry

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someorg--tiny-sd"
    shutil.copytree(TINY_SD, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plan = registry.resolve_model("someorg/tiny-sd", "test")
    assert (plan.location, plan.local) == ("someorg/tiny-sd", False)
    gen = DiffusersGenerator("someorg/tiny-sd", device="cpu", steps=1)
    assert gen.generate(["Edema."], [3]).shape == (1, 32, 32)
    local = DiffusersGenerator(TINY_SD, device="cpu", steps=1)
    assert gen.fingerprint == local.fingerprint  # the same files, found through the cache


def test_an_unavailable_device_is_one_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(GeneratorError, match=r"cannot move the pipeline to device 'cuda'"):
        DiffusersGenerator(TINY_SD, device="cuda")


def test_black_and_nan_images_are_counted_invalid_never_scored(tiny, monkeypatch, tmp_path):
    from pytest_synthcxr.sampling.cells import Cell
    from pytest_synthcxr.models.judges.torchscript import ProbeJudge
    from pytest_synthcxr.sampling.pool import SamplePool

    def run(prompts, seeds):  # what a safety checker or a float16 overflow hands back
        images = np.random.default_rng(0).random((len(prompts), 32, 32), dtype=np.float32)
        images[0] = 0.0
        images[1, 3, 3] = np.nan
        return images

    monkeypatch.setattr(tiny, "_run", run)
    monkeypatch.setattr(tiny, "batch_size", 4)
    judge = ProbeJudge("probe", make_torchscript_probe(tmp_path / "p.pt", 1), ["Effusion"])
    pool = SamplePool(tiny, judge, 0, batch_size=4)
    table = pool.table([Cell("Effusion")], 4)
    assert pool.stats.invalid == 2 and table["valid"].tolist() == [False, False, True, True]
    assert table["p:Effusion"].isna().tolist() == [True, True, False, False]


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers' Euler scheduler on numpy 2
@pytest.mark.parametrize("scheduler", [None, "EulerDiscreteScheduler"])
def test_settings_and_fingerprint_come_from_the_config_files_without_loading(tiny, scheduler):
    """What shapes the images is read from the folder's JSON files: the same settings and
    fingerprint as the loaded pipeline gives, with the pipeline never loaded."""
    kwargs = {"name": "tiny", "device": "cpu", "steps": 2, "guidance": 4.0, "batch_size": 3, "scheduler": scheduler}
    lazy = DiffusersGenerator(TINY_SD, lazy=True, **kwargs)
    settings, fingerprint = lazy.settings, lazy.fingerprint
    assert lazy._pipe is None
    eager = tiny if scheduler is None else DiffusersGenerator(TINY_SD, **kwargs)
    assert eager._pipe is not None
    eager._fingerprint = None  # computed afresh from the loaded pipeline
    eager._folder_found = None
    assert settings == eager.settings and fingerprint == eager.fingerprint
    assert lazy.generate(PROMPTS[:1], SEEDS[:1]).shape == (1, 32, 32) and lazy._pipe is not None  # loads on first use


def test_a_warm_audit_never_loads_the_pipeline(pytester, probe_spec):
    """Every sample in the cache: the rerun gives the same JSON with a pipeline that cannot load."""
    args = ["-p", "no:randomly", f"--synthcxr-model={TINY_SD}", "--synthcxr-device=cpu", "--synthcxr-json=out.json", f"--synthcxr-cache-dir={pytester.path / 'cache'}"]
    pytester.runpytest(*args)
    cold = (pytester.path / "out.json").read_bytes()
    pytester.makeconftest(  # patched for the inner runs only (they share this process)
        "import diffusers\n"
        "ORIGINAL = diffusers.DiffusionPipeline.__dict__['from_pretrained']\n"
        "def _refuse(*args, **kwargs):\n"
        "    raise RuntimeError('the pipeline was loaded')\n"
        "def pytest_configure(config):\n"
        "    diffusers.DiffusionPipeline.from_pretrained = staticmethod(_refuse)\n"
        "def pytest_unconfigure(config):\n"
        "    diffusers.DiffusionPipeline.from_pretrained = ORIGINAL\n"
    )
    warm = pytester.runpytest(*args)
    warm.stdout.fnmatch_lines(["0 images generated*", "sample cache: * hits, 0 misses*"])
    assert "the pipeline was loaded" not in warm.stdout.str() + warm.stderr.str()
    assert (pytester.path / "out.json").read_bytes() == cold
    # a run that needs one new image loads it, and a pipeline that cannot load stops the run with one line
    more = pytester.runpytest(*args, "--synthcxr-seed=1")
    assert more.ret == pytest.ExitCode.USAGE_ERROR and "Traceback" not in more.stdout.str()
    more.stdout.fnmatch_lines(["*Exit: synthcxr: model * cannot load a diffusers pipeline from the folder *: the pipeline was loaded*"])
    import diffusers

    assert "_refuse" not in repr(diffusers.DiffusionPipeline.from_pretrained)  # restored for the other tests


def test_a_hub_id_downloaded_on_first_use_gets_the_fingerprint_of_its_files(tmp_path, monkeypatch):
    """Lazy loading must not fingerprint a hub id by its name on the run that downloads it (the
    next run, finding the snapshot, would hash the files and miss every cached sample)."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someorg--tiny-sd"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gen = DiffusersGenerator("someorg/tiny-sd", device="cpu", steps=1, lazy=True)
    original = DiffusersGenerator._load

    def download_then_load(self, *args):  # the snapshot appears when the pipeline is first loaded
        shutil.copytree(TINY_SD, repo / "snapshots" / commit)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
        return original(self, *args)

    monkeypatch.setattr(DiffusersGenerator, "_load", download_then_load)
    first = gen.fingerprint
    assert gen._pipe is not None  # it had to load (download) to see the files
    later = DiffusersGenerator("someorg/tiny-sd", device="cpu", steps=1, lazy=True)
    assert later.fingerprint == first and later._pipe is None  # the next run: same key, nothing loaded
    assert first == DiffusersGenerator(TINY_SD, device="cpu", steps=1, lazy=True).fingerprint


def test_a_failed_load_is_not_retried(monkeypatch):
    gen = DiffusersGenerator(TINY_SD, device="cpu", steps=1, lazy=True)
    calls = []

    def broken(self, *args):
        calls.append(1)
        raise GeneratorError("synthcxr: model 'x': cannot load")

    monkeypatch.setattr(DiffusersGenerator, "_load", broken)
    for _ in range(3):
        with pytest.raises(GeneratorError, match="cannot load"):
            gen.generate(PROMPTS[:1], SEEDS[:1])
    assert calls == [1]
