"""GPU settings of the diffusers generator (issue 19), run on the tiny pipeline on a CPU: dtype,
attention kernels, torch.compile, channels-last, the batch-size probe; the full-size stand-in."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
# loaded at collection, before any pytester run (see test_diffusers.py: C extensions load once)
from diffusers import StableDiffusionPipeline  # noqa: F401
from models_support import TINY_SD, small_spec
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401

from pytest_synthcxr.models.generators.batch_probe import BatchProbe
from pytest_synthcxr.models.generators.diffusers import (
    DiffusersGenerator,
    GeneratorError,
)

PROMPTS = ["Pleural effusion.", "Hispanic female. Pleural effusion.", "No acute cardiopulmonary process."]
SEEDS = [11, 22, 33]


def make(**kwargs):
    return DiffusersGenerator(TINY_SD, name="tiny", device="cpu", steps=2, guidance=4.0, **{"batch_size": 3, **kwargs})


def fingerprint_before_these_settings(gen: DiffusersGenerator) -> str:
    """The fingerprint as computed before issue 19 (the pipeline's files, then the call settings
    and the device kind): defaults must still give it, or every cache filled earlier is missed.
    (For the tiny pipeline at steps 2, guidance 4 it was 3ee00289...)"""
    import hashlib

    digest = hashlib.sha256()
    for f in sorted(p for p in TINY_SD.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(TINY_SD)).encode() + b"\0")
        digest.update(f.read_bytes())
    digest.update(json.dumps({**gen._call_settings(), "device": "cpu"}, sort_keys=True).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def reference():
    gen = make()
    return gen, gen.generate(PROMPTS, SEEDS)


def test_defaults_keep_the_fingerprint_of_earlier_caches(reference):
    gen, _ = reference
    old = fingerprint_before_these_settings(gen)
    assert gen.fingerprint == old
    assert make(lazy=True, attention="sdpa", compile=False, channels_last=False, batch_size=7).fingerprint == old
    assert make(lazy=True, dtype="bfloat16").fingerprint != old
    s = gen.settings
    assert (s["dtype"], s["attention"], s["compile"], s["channels_last"], s["batch_size"]) == ("float32", "sdpa", False, False, 3)


@pytest.mark.parametrize(
    "setting, key, value",
    [
        ({"dtype": "bfloat16"}, "dtype", "bfloat16"),
        ({"dtype": "float16"}, "dtype", "float16"),
        ({"attention": "classic"}, "attention", "classic"),
        ({"channels_last": True}, "channels_last", True),
        # inductor compiles a UNet for over a minute on one CPU core; the eager backend runs the
        # same torch.compile wrapping and graph capture without code generation
        ({"compile": True, "compile_backend": "eager"}, "compile", "eager"),
    ],
)
def test_each_setting_runs_and_is_in_settings_and_fingerprint(reference, setting, key, value):
    base, expected = reference
    gen = make(**setting)
    images = gen.generate(PROMPTS, SEEDS)
    assert images.shape == (3, 32, 32) and np.isfinite(images).all()
    assert np.abs(images - expected).max() <= 4 / 255  # another kernel or precision: a few 8-bit levels at most (measured: 2)
    assert gen.settings[key] == value
    assert gen.fingerprint != base.fingerprint  # may move pixels: never served from float32's cache
    assert make(lazy=True, **setting).fingerprint == gen.fingerprint  # the same without loading


def test_the_settings_act_on_the_loaded_pipeline():
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    default = make()
    assert {type(p) for p in default.pipe.unet.attn_processors.values()} == {AttnProcessor2_0}
    classic = make(attention="classic")
    assert {type(p) for p in classic.pipe.unet.attn_processors.values()} == {AttnProcessor}
    assert {type(p) for p in classic.pipe.vae.attn_processors.values()} == {AttnProcessor}
    last = make(channels_last=True)
    conv = last.pipe.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not default.pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    compiled = make(compile=True, compile_backend="eager")
    assert hasattr(compiled.pipe.unet, "_orig_mod")  # torch.compile's OptimizedModule wraps the UNet
    assert make(dtype="bfloat16").pipe.unet.dtype == torch.bfloat16


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"dtype": "float8"}, "dtype must be one of auto, float32, float16, bfloat16, got 'float8'"),
        ({"attention": "flash"}, "attention must be one of sdpa, classic, got 'flash'"),
        ({"batch_size": 0}, 'batch_size must be a positive integer or "probe", got 0'),
        ({"batch_size": "fast"}, 'batch_size must be a positive integer or "probe", got \'fast\''),
    ],
)
def test_bad_settings_are_one_line(kwargs, fragment):
    with pytest.raises(GeneratorError) as info:
        make(lazy=True, **kwargs)
    assert str(info.value) == f"synthcxr: model 'tiny': {fragment}"


def test_a_dtype_the_device_lacks_kernels_for_is_one_line(monkeypatch):
    gen = make(dtype="float16")

    def missing_kernel(*args, **kwargs):
        raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'')

    monkeypatch.setattr(type(gen.pipe), "__call__", missing_kernel)
    with pytest.raises(GeneratorError, match=r"^synthcxr: model 'tiny': dtype float16 is not supported on device 'cpu' by this torch build .*use dtype = \"float32\""):
        gen.generate(PROMPTS[:1], SEEDS[:1])


def test_bfloat16_on_a_gpu_older_than_ampere_is_refused_before_the_run(monkeypatch):
    import torch

    from pytest_synthcxr.models.device import dtype_problem

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Tesla T4")
    assert dtype_problem("bfloat16", "cuda") == "dtype bfloat16 needs a GPU of compute capability 8.0 or newer; cuda is Tesla T4 (7.x): use float16 or float32"
    assert dtype_problem("float16", "cuda") is None and dtype_problem("auto", "cuda:0") is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (9, 0))
    assert dtype_problem("bfloat16", "cuda:0") is None
    with pytest.raises(GeneratorError, match="^synthcxr: model 'tiny': dtype bfloat16 needs a GPU of compute capability 8.0"):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (7, 0))
        DiffusersGenerator(TINY_SD, name="tiny", device="cuda", dtype="bfloat16", lazy=True)


def test_spec_table_values_reach_the_generator(tmp_path):
    from pytest_synthcxr.models.registry import load_generator
    from pytest_synthcxr.spec.schema import SpecError, load_spec

    spec = tmp_path / "synthcxr.toml"
    table = f"model = 'tiny'\nfindings = ['Effusion']\n[models.tiny]\npath = '{TINY_SD}'\n"
    spec.write_text(table + "dtype = 'bfloat16'\nattention = 'classic'\ncompile = true\nchannels_last = true\nbatch_size = 'probe'\n")
    gen = load_generator("tiny", load_spec(spec), device="cpu")
    s = gen.settings
    assert (s["dtype"], s["attention"], s["compile"], s["channels_last"], s["batch_size"]) == ("bfloat16", "classic", "inductor", True, "probe")
    assert gen._pipe is None  # nothing loaded
    spec.write_text(table + "attention = 'flash'\n")
    with pytest.raises(SpecError, match=r"models\.tiny\.attention: Input should be 'sdpa' or 'classic' \(got 'flash'\)"):
        load_spec(spec)
    spec.write_text(table + "batch_size = 'fast'\n")
    with pytest.raises(SpecError, match=r"models\.tiny\.batch_size: must be an integer from 1 to 1024 or \"probe\", got 'fast'"):
        load_spec(spec)


def test_defaults_by_device():
    assert make(lazy=True, batch_size=None).settings["batch_size"] == 4
    cuda = DiffusersGenerator(TINY_SD, device="cuda", lazy=True)  # nothing loads: no GPU needed
    assert cuda.settings["batch_size"] == "probe" and cuda.settings["dtype"] == "float16"


# -- the batch probe ---------------------------------------------------------------------------


def run_probe(probe: BatchProbe, request: int, seconds) -> list[tuple[int, bool]]:
    """Drive a probe through one request as the generator does; ``seconds(size)`` times a batch."""
    done, batches = 0, []
    while done < request:
        if probe.done:
            size, timed = min(probe.chosen, request - done), False
        else:
            size, timed = probe.next_batch(request - done, done == 0)
        if timed:
            probe.record(size, seconds(size))
        batches.append((size, timed))
        done += size
    return batches


def test_probe_keeps_the_fastest_size():
    # 1 image takes 1 s, a batch of b takes 0.5 + 0.5 b s up to 8, then memory bandwidth: no gain
    seconds = lambda b: 1.0 if b == 1 else 0.5 + 0.5 * b if b <= 8 else 4.5 * b / 8
    probe = BatchProbe()
    batches = run_probe(probe, 64, seconds)
    assert [b for b in batches if b[1]] == [(1, True), (1, True), (2, True), (2, True), (4, True), (4, True), (8, True), (8, True), (16, True), (16, True)]
    assert probe.done and probe.chosen == 16 and sum(b for b, _ in batches) == 64  # 16 is as fast as 8: the larger kept
    assert set(probe.rates) == {1, 2, 4, 8, 16} and "batch size 16" in probe.summary()


def test_probe_stops_when_a_larger_batch_is_slower():
    probe = BatchProbe()
    run_probe(probe, 64, lambda b: {1: 1.0, 2: 1.2, 4: 3.0}.get(b, 99.0))
    assert probe.chosen == 2 and set(probe.rates) == {1, 2, 4}


def test_probe_out_of_memory_keeps_the_best_smaller_size():
    probe = BatchProbe()
    for size in (1, 1, 2, 2):
        probe.record(size, 1.0)  # 2 images/s at 2: better than 1, so 4 is next
    assert not probe.done and probe.next_batch(64, True) == (4, True)
    assert probe.out_of_memory(4) == 2 and probe.done and probe.out_of_memory_at == 4
    assert BatchProbe(start=8).out_of_memory(8) == 4  # nothing measured: today's halving


def test_probe_ends_when_a_whole_request_is_smaller_than_the_next_size():
    probe = BatchProbe()
    batches = run_probe(probe, 5, lambda b: 1.0 / b**0.5)
    assert batches == [(1, True), (1, True), (2, True), (1, False)] and not probe.done  # the tail is not timed
    assert run_probe(probe, 1, lambda b: 1.0) == [(1, False)]  # requests this small: keep what was measured
    assert probe.done and probe.chosen == 2
    small = BatchProbe(start=4)
    assert small.next_batch(3, True) == (3, False) and small.done and small.chosen == 4


def test_generator_probe_picks_a_size_and_images_do_not_depend_on_it(reference, monkeypatch):
    _, expected = reference
    gen = make(batch_size="probe")
    record, timed = gen.probe.record, []

    def record_synthetic(size, seconds):  # the real clock on a shared machine is noise: b images take 0.5 + 0.5 b s
        timed.append(size)
        record(size, 0.5 + 0.5 * size)

    monkeypatch.setattr(gen.probe, "record", record_synthetic)
    prompts, seeds = PROMPTS * 10, list(range(100, 130))
    images = gen.generate(prompts, seeds)
    assert timed == [1, 1, 2, 2, 4, 4, 8, 8] and not gen.probe.done  # 8 was 11% faster than 4: 16 is next
    np.testing.assert_array_equal(gen.generate(PROMPTS, SEEDS), expected)  # a request smaller than 16 ends the probe
    assert gen.probe.done and gen.probe.chosen == 8 and gen.batch_size == 8
    one = make(batch_size=1).generate(prompts, seeds)
    np.testing.assert_allclose(images, one, atol=1e-4)  # one seed per image: the batch does not matter
    assert gen.settings["batch_size"] == "probe" and gen.fingerprint == fingerprint_before_these_settings(gen)


def test_generator_probe_halves_on_out_of_memory(monkeypatch):
    gen = make(batch_size="probe")
    record = gen.probe.record
    monkeypatch.setattr(gen.probe, "record", lambda size, seconds: record(size, 0.5 + 0.5 * size))  # not the noisy clock
    original, sizes = gen._run, []

    def run(prompts, seeds):
        sizes.append(len(prompts))
        if len(prompts) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(prompts, seeds)

    monkeypatch.setattr(gen, "_run", run)
    images = gen.generate(PROMPTS * 4, list(range(12)))
    assert images.shape == (12, 32, 32) and gen.probe.out_of_memory_at == 4 and gen.batch_size == 2
    assert sizes[:5] == [1, 1, 2, 2, 4] and set(sizes[5:]) == {2}


# -- bfloat16 against float32 --------------------------------------------------------------------


def test_bfloat16_moves_pixels_by_a_few_levels_and_judge_calls_only_near_the_operating_point(reference):
    """Measured on 24 images of the tiny pipeline (figures in docs/real-models.md): bfloat16 moves
    pixels by at most a few 8-bit levels; the phantom judge's score moves by up to ~0.1 on these
    noise-like images, so a call can flip, but only for an image scored near the operating point."""
    from pytest_synthcxr.models.judges.phantom import PhantomJudge

    prompts, seeds = PROMPTS * 8, list(range(200, 224))
    full = make(batch_size=8).generate(prompts, seeds)
    half = make(batch_size=8, dtype="bfloat16").generate(prompts, seeds)
    diff = np.abs(full - half)
    assert 0 < diff.max() <= 4 / 255, diff.max() * 255
    assert (diff > 0).mean() < 0.5  # most pixels keep their 8-bit value
    judge = PhantomJudge(device="cpu")
    a, b = judge.predict(full), judge.predict(half)
    assert np.abs(a - b).max() < 0.3
    flipped = (a > 0.5) != (b > 0.5)
    assert flipped.mean() < 0.02 and (np.abs(a[flipped] - 0.5) < 0.1).all()


def test_bfloat16_audit_gives_the_same_verdicts_as_float32(pytester):
    """A small phantom-judged audit of the tiny pipeline, float32 then bfloat16 (own caches)."""
    verdicts = {}
    for dtype in ("float32", "bfloat16"):
        pytester.makefile(".toml", synthcxr="judge = 'phantom'\n" + small_spec(samples=4) + f"[models.tiny]\npath = '{TINY_SD}'\nsteps = 2\nguidance = 3.0\ndtype = '{dtype}'\n")
        pytester.runpytest("-p", "no:randomly", "--synthcxr-model=tiny", "--synthcxr-device=cpu", f"--synthcxr-json={dtype}.json", f"--synthcxr-cache-dir={pytester.path / dtype}")
        data = json.loads((pytester.path / f"{dtype}.json").read_text())
        verdicts[dtype] = {item["id"]: (item["verdict"], item["n"]) for item in data["items"]}
        assert data["model"]["settings"]["dtype"] == dtype
    assert len(verdicts["float32"]) == 4 and verdicts["bfloat16"] == verdicts["float32"]


# -- the full-size stand-in ----------------------------------------------------------------------


def test_standin_has_roentgens_size_counted_without_allocating():
    from pytest_synthcxr.models.generators import standin

    # Stable Diffusion 1.x's published component sizes
    assert standin.parameter_counts() == {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
    flops = standin.unet_flops()
    assert 7.5e11 < flops < 8.5e11  # ~0.80 TFLOPs per UNet pass at 512 px (64 x 64 latents)
    assert standin.unet_flops(side=256) < flops / 3.5  # attention and convolutions shrink with the latent


def test_small_standin_builds_offline_and_generates(tmp_path, capsys):
    from pytest_synthcxr.models.generators import standin

    counts = standin.parameter_counts(small=True)
    assert sum(counts.values()) < 25_000_000
    full, small = standin.configs(), standin.configs(small=True)
    for part in ("unet", "vae"):  # the same layers: only the widths differ
        assert {k: v for k, v in full[part].items() if k != "block_out_channels" and k != "cross_attention_dim"} == {
            k: v for k, v in small[part].items() if k != "block_out_channels" and k != "cross_attention_dim"
        }
    standin.main(["--small"])
    assert capsys.readouterr().out.startswith("unet 8.7M, vae 5.3M, text_encoder 6.1M parameters; UNet 19 GFLOPs per step at 512 px")
    folder = standin.save(tmp_path / "standin", small=True)
    assert (folder / "model_index.json").is_file() and not list(folder.rglob("*.bin"))
    gen = DiffusersGenerator(folder, device="cpu", steps=1, guidance=4.0, height=64, width=64, batch_size=2)
    images = gen.generate(PROMPTS[:2], SEEDS[:2])
    assert images.shape == (2, 64, 64) and np.isfinite(images).all()
    assert gen.settings["scheduler"] == "PNDMScheduler" and gen.settings["pipeline"] == "StableDiffusionPipeline"


def test_gpu_benchmark_runs_end_to_end_in_quick_mode(tmp_path, capsys):
    """benchmarks/gpu_throughput.py on the narrow stand-in, as small as it goes (its GPU mode runs
    the same code at 512 px and 75 steps)."""
    from bench_support import load_benchmark

    bench = load_benchmark("gpu_throughput")
    out = tmp_path / "rows.json"
    bench.main(["--quick", "--dtypes", "float32", "--attention", "sdpa", "--request", "2", "--images", "1", "--repeats", "1", "--naive-images", "1", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    ours, naive = [r for r in rows if r["kind"] == "ours"], [r for r in rows if r["kind"] == "naive"]
    assert len(ours) == 1 and ours[0]["batch"] in (1, 2) and ours[0]["images_per_s"] > 0 and ours[0]["vs_float32_max_levels"] == 0
    assert ours[0]["of_matmul"] > 0 and ours[0]["of_datasheet_peak"] is None  # no datasheet peak for a CPU
    assert len(naive) == 1 and naive[0]["ours_best_over_naive"] > 0
    assert "| ours | float32 | sdpa | off |" in capsys.readouterr().out
    assert bench.datasheet_peak("cpu", "bfloat16", 100.0) == (100.0, "given")


def test_the_probe_choice_is_printed_once_during_an_audit(pytester):
    """batch_size = "probe": the audit says once, in the run's log, what the probe chose (and the
    rates behind it); the JSON keeps "probe" (the choice depends on timing)."""
    pytester.makefile(".toml", synthcxr="judge = 'phantom'\n" + small_spec(samples=8) + f"[models.tiny]\npath = '{TINY_SD}'\nsteps = 2\nguidance = 3.0\nbatch_size = 'probe'\n")
    result = pytester.runpytest("-p", "no:randomly", "-s", "--synthcxr-model=tiny", "--synthcxr-device=cpu", "--synthcxr-json=out.json", "--synthcxr-no-cache")
    lines = [l for l in result.stdout.lines + result.stderr.lines if "batch size probe:" in l]
    assert len(lines) == 1 and "synthcxr: tiny: batch size probe: batch size " in lines[0] and "images/s by batch size: 1:" in lines[0], lines
    assert json.loads((pytester.path / "out.json").read_text())["model"]["settings"]["batch_size"] == "probe"
