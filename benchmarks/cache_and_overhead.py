"""Cost of an audit: cold vs a naive hand-written script, warm vs cold, overhead beyond compute,
plugin import time, peak memory. Ratios measured in one run; results in benchmarks/README.md.

    .venv/bin/python benchmarks/cache_and_overhead.py [--worlds phantom,tiny-sd] [--repeats 3]

Every timing is the wall time of a fresh process (imports and model loading included on both
sides of a ratio), the median of --repeats runs. The audit uses `sampling = "fixed"`, so it
generates exactly the images the naive script and the pure-compute run generate (the same
prompts and seeds, read from the audit's own CSV).

1. naive / cold audit: the naive script is what a researcher writes by hand: a loop over the
   (prompt, seed) pairs, one pipeline call per image, the judge called per image, no cache.
2. warm / cold: the same audit command again on the cache the cold run filled.
3. overhead: (cold audit - pure compute) / cold audit, where pure compute is a process that loads
   the same generator and judge and runs generate() and predict() on the same images in batches
   of the spec's batch size, and nothing else.
4. plugin import time: `python -X importtime` of a pytest run of one trivial test, the cumulative
   import time of pytest_synthcxr (and whether torch was imported); peak RSS of `make demo`'s
   audit from /usr/bin/time (--demo).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TINY_SD = ROOT / "fixtures" / "tiny-sd"

PHANTOM_SPEC = 'sampling = "fixed"\n' + (ROOT / "fixtures" / "specs" / "small.toml").read_text()
TINY_SPEC = """judge = 'probe'
sampling = "fixed"
samples_per_cell = 64
findings = ['Effusion']
batch_size = 16
[subgroups]
sex = ['female', 'male']
race = ['White']
[[bias]]
metric = 'tpr'
statistic = 'gap'
prompt = ['plain', 'named']
max = 0.5
[validity]
min_sensitivity = 0.5
[hallucination]
max_rate = 0.5
[judges.probe]
kind = 'torchscript'
path = 'probe.pt'
labels = ['Effusion', 'COVID-19']
[models.'{tiny}']
steps = 2
guidance = 3.0
"""

# a process that loads generator and judge the way the audit does, then runs `body`
LOADER = """
import sys, csv, time
import numpy as np
from pytest_synthcxr.spec import load_spec
from pytest_synthcxr.registry import load_generator, load_judge
model, spec_path, csv_path, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
loaded = load_spec(__import__('pathlib').Path(spec_path))
gen = load_generator(model, loaded, device='cpu')
judge = load_judge(model, loaded, device='cpu')
rows = list(csv.DictReader(open(csv_path)))
pairs = [(r['prompt'], int(r['seed'])) for r in rows]
"""
NAIVE = LOADER + """
scores = []
for prompt, seed in pairs:                      # one image per call, judged one by one
    image = gen.generate([prompt], [seed])
    scores.append(judge.predict(image)[0])
print(len(scores))
"""
PURE = LOADER + """
n = 0
for i in range(0, len(pairs), batch):
    part = pairs[i:i + batch]
    images = gen.generate([p for p, _ in part], [s for _, s in part])
    judge.predict(images)
    n += len(part)
print(n)
"""


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if out.returncode not in (0, 1):  # 1: the audit found failing items, which is fine here
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return wall, out.stdout + out.stderr


def audit_cmd(model: str, work: Path, cache: Path, extra: list[str]) -> list[str]:
    return [
        PY, "-m", "pytest", str(work / "empty"), "-q", "-p", "no:randomly", "-p", "no:cacheprovider", f"--rootdir={work}",
        f"--synthcxr-model={model}", f"--synthcxr-spec={work / 'spec.toml'}", f"--synthcxr-cache-dir={cache}",
        "--synthcxr-device=cpu", *extra,
    ]


def world(name: str, repeats: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    (work / "empty").mkdir()
    naive_too = name != "demo"  # one image per call at demo scale would take about half an hour
    if name == "phantom":
        model, spec, batch = "phantom-biased", PHANTOM_SPEC, 64
    elif name == "demo":  # `make demo`'s audit: built-in spec, sequential sampling, about 20,000 images
        from pytest_synthcxr.spec.schema import default_spec_text

        model, spec, batch = "phantom-biased", default_spec_text(), 64
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from models_support import make_torchscript_probe

        make_torchscript_probe(work / "probe.pt", 2)
        model, spec, batch = str(TINY_SD), TINY_SPEC.format(tiny=TINY_SD), 16
    (work / "spec.toml").write_text(spec)
    cold, warm, naive, pure = [], [], [], []
    images = 0
    for r in range(repeats):
        cache = work / f"cache{r}"
        wall, out = timed(audit_cmd(model, work, cache, [f"--synthcxr-csv={work / 'samples.csv'}", "--synthcxr-report=" + str(work / "r.html")]), work)
        cold.append(wall)
        images = int(re.search(r"(\d+) images generated", out).group(1))
        wall, out = timed(audit_cmd(model, work, cache, ["--synthcxr-report=" + str(work / "r.html")]), work)
        warm.append(wall)
        assert re.search(r"\b0 misses", out), out[-2000:]
    with open(work / "samples.csv") as fh:
        pairs = sum(1 for _ in csv.DictReader(fh))
    assert pairs == images, (pairs, images)  # the naive and pure runs draw exactly the audit's images
    for _ in range(repeats):
        if naive_too:
            naive.append(timed([PY, "-c", NAIVE, model, str(work / "spec.toml"), str(work / "samples.csv"), "1"], work)[0])
        pure.append(timed([PY, "-c", PURE, model, str(work / "spec.toml"), str(work / "samples.csv"), str(batch)], work)[0])
    shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in dict(cold=cold, warm=warm, naive=naive, pure=pure).items() if v}
    return {
        "world": name,
        "images": images,
        **{f"{k}_s": round(v, 2) for k, v in med.items()},
        "naive_over_cold": round(med["naive"] / med["cold"], 2) if "naive" in med else None,
        "warm_over_cold": round(med["warm"] / med["cold"], 3),
        "overhead": round((med["cold"] - med["pure"]) / med["cold"], 3),
    }


def import_cost() -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    (work / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    out = subprocess.run([PY, "-X", "importtime", "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", str(work)], cwd=work, capture_output=True, text=True)
    cumulative = {}
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            cumulative[m.group(4)] = int(m.group(2))
    plugin = max((v for k, v in cumulative.items() if k.startswith("pytest_synthcxr")), default=0)
    walls = {}
    for label, extra in (("with", []), ("without", ["-p", "no:synthcxr"])):
        times = [timed([PY, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *extra, str(work)], work)[0] for _ in range(5)]
        walls[label] = statistics.median(times)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "plugin_import_ms": round(plugin / 1000, 1),
        "pytest_import_ms": round(cumulative.get("pytest", 0) / 1000, 1),
        "heavy_imported": sorted(k for k in ("torch", "diffusers", "torchxrayvision", "pandas", "scipy", "hypothesis") if k in cumulative),
        "unrelated_run_with_plugin_s": round(walls["with"], 3),
        "unrelated_run_without_plugin_s": round(walls["without"], 3),
    }


def demo_memory() -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    (work / "empty").mkdir()
    cmd = ["/usr/bin/time", "-f", "PEAK_KB %M", PY, "-m", "pytest", str(work / "empty"), "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
           f"--rootdir={work}", "--synthcxr-model=phantom-biased", f"--synthcxr-cache-dir={work / 'cache'}", f"--synthcxr-report={work / 'r.html'}"]
    wall, out = timed(cmd, work)
    peak = int(re.search(r"PEAK_KB (\d+)", out).group(1))
    shutil.rmtree(work, ignore_errors=True)
    return {"demo_wall_s": round(wall, 1), "demo_peak_rss_mib": round(peak / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", default="phantom,tiny-sd,demo", help="phantom (960 images), tiny-sd (384), demo (make demo's audit, about 20,000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--demo", action="store_true", help="also measure the demo audit's peak memory (about 80 s)")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    results = [world(w, args.repeats) for w in args.worlds.split(",") if w]
    for r in results:
        print(json.dumps(r), flush=True)
    print(json.dumps(import_cost()), flush=True)
    if args.demo:
        print(json.dumps(demo_memory()), flush=True)


if __name__ == "__main__":
    main()
