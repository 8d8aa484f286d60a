"""Model and judge resolution, custom TorchScript / state-dict probes, and judge ensembles."""

from __future__ import annotations

import numpy as np
import pytest
from models_support import make_state_dict_probe, make_torchscript_probe, small_spec

from pytest_synthcxr.models import registry
from pytest_synthcxr.models.judges.base import JudgeError, op_norm
from pytest_synthcxr.models.judges.ensemble import JudgePanel, panel_outputs
from pytest_synthcxr.models.judges.torchscript import ProbeJudge
from pytest_synthcxr.models.aliases import ModelError
from pytest_synthcxr.spec.schema import SpecError, load_spec


def _loaded(tmp_path, text):
    path = tmp_path / "synthcxr.toml"
    path.write_text(text)
    return load_spec(path)


# -- models ----------------------------------------------------------------------------------------


def test_roentgen_defaults_come_from_its_model_card(tmp_path, monkeypatch):
    folder = tmp_path / "roentgen"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    monkeypatch.setenv("SYNTHCXR_ROENTGEN_PATH", str(folder))
    plan = registry.resolve_model("roentgen", "test")
    c = plan.config
    assert plan.location == str(folder) and plan.local
    assert (c.steps, c.guidance, c.height, c.width, c.dtype, c.judge) == (75, 4.0, 512, 512, "float32", "xrv")


def test_a_spec_table_overrides_and_adds_aliases(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTHCXR_ROENTGEN_PATH", raising=False)
    for name in ("rg", "v2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model_index.json").write_text("{}")
    text = (
        "[models.roentgen]\npath = 'rg'\nsteps = 20\n"
        "[models.my-v2]\nhub_id = 'stanfordmimi/RoentGen-v2'\npath = 'v2'\nguidance = 3.0\nnegative_prompt = 'lateral view'\n"
    )
    loaded = _loaded(tmp_path, text)
    plan = registry.resolve_model("roentgen", "test", loaded)
    assert plan.location == str(tmp_path / "rg") and plan.config.steps == 20 and plan.config.guidance == 4.0
    mine = registry.resolve_model("my-v2", "test", loaded)
    assert mine.location == str(tmp_path / "v2") and mine.config.negative_prompt == "lateral view"
    assert "my-v2" in registry.known_models(loaded.spec)


def test_generation_settings_are_validated_like_the_rest_of_the_spec(tmp_path):
    with pytest.raises(SpecError, match=r"models.roentgen.height: Input should be a multiple of 8 \(got 500\)"):
        _loaded(tmp_path, "[models.roentgen]\nheight = 500\n")
    with pytest.raises(SpecError, match=r"models.x.stpes: unknown key"):
        _loaded(tmp_path, "[models.x]\nstpes = 5\n")


def test_entry_points_add_generators_and_judges(tmp_path, monkeypatch):
    class EP:
        def __init__(self, name, obj):
            self.name, self.obj = name, obj

        def load(self):
            return self.obj

    made = {}

    def factory(name, options, *, device, allow_pickle):
        made["generator"] = (name, options, device, allow_pickle)
        from pytest_synthcxr.models.generators.phantom import PhantomGenerator

        return PhantomGenerator("phantom")

    groups = {registry.GENERATOR_GROUP: [EP("cheff", factory)], registry.JUDGE_GROUP: [EP("my-judge", lambda *a, **k: None)]}
    monkeypatch.setattr(registry, "entry_points", lambda group: groups.get(group, []))
    assert "cheff" in registry.known_models() and "my-judge" in registry.known_judges()
    loaded = _loaded(tmp_path, "[models.cheff-big]\nkind = 'cheff'\noptions = {size = 512}\n")
    registry.load_generator("cheff-big", loaded, device="cpu")
    assert made["generator"] == ("cheff-big", {"size": 512, "path": None}, "cpu", False)
    plan = registry.resolve_model("cheff", "test", loaded)
    assert plan.config.kind == "cheff"
    assert registry.resolve_judge("my-judge").outputs is None  # known only once built


def test_unknown_kinds_and_judges_are_one_line_errors(tmp_path):
    loaded = _loaded(tmp_path, "judge = 'nope'\n[models.x]\nkind = 'gan'\npath = '.'\n")
    with pytest.raises(ModelError, match=r"\[tool.synthcxr.models.x\] kind: unknown generator kind 'gan'; known kinds: diffusers, folder, phantom"):
        registry.resolve_model("x", "test", loaded)
    with pytest.raises(ModelError, match=r"unknown judge 'nope'; known judges: phantom, phantom-attributes, xrv, xrv-age, xrv-race, xrv-sex, xrv:densenet121-res224-all"):
        registry.check("phantom", "test", loaded)


# -- probes ----------------------------------------------------------------------------------------


def test_torchscript_probe_scores_with_its_operating_point(tmp_path):
    path = make_torchscript_probe(tmp_path / "probe.pt", 2)
    judge = ProbeJudge("probe", path, ["COVID-19", "Effusion"], threshold=[0.7, 0.5])
    images = np.stack([np.full((40, 30), v, np.float32) for v in (0.2, 0.5, 0.9)])
    raw = judge.predict_raw(images)
    # ProbeNet: logit = scale * (mean - 0.5), scale = (4, -4)
    expected = 1 / (1 + np.exp(-np.outer([0.2 - 0.5, 0.0, 0.9 - 0.5], [4.0, -4.0])))
    np.testing.assert_allclose(raw, expected, atol=1e-5)
    np.testing.assert_allclose(judge.predict(images), op_norm(expected, np.array([0.7, 0.5])), atol=1e-5)
    assert judge.predict(images)[1, 0] < 0.5 < judge.predict(images)[2, 0]  # 0.5 raw is below the 0.7 operating point
    assert judge.settings["sha256"] and judge.outputs == ("COVID-19", "Effusion")


def test_state_dict_probe_needs_safetensors_or_the_flag(tmp_path):
    safe = make_state_dict_probe(tmp_path / "probe.safetensors", 1)
    mine = ("models_support",)  # the opt-in a user's own module needs (allow_modules)
    judge = ProbeJudge("covid", safe, ["COVID-19"], kind="state-dict", class_path="models_support:ProbeNet", init={"n_outputs": 1}, allow_modules=mine)
    assert judge.predict(np.full((2, 16, 16), 0.9, np.float32)).shape == (2, 1)
    pickled = make_state_dict_probe(tmp_path / "probe.pt", 1)
    with pytest.raises(JudgeError, match=r"is a pickle file \(loading it can run code\) and its SHA-256 [0-9a-f]{64} is neither .* --synthcxr-allow-pickle"):
        ProbeJudge("covid", pickled, ["COVID-19"], kind="state-dict", class_path="models_support:ProbeNet", allow_modules=mine)
    ok = ProbeJudge("covid", pickled, ["COVID-19"], kind="state-dict", class_path="models_support:ProbeNet", allow_pickle=True, allow_modules=mine)
    np.testing.assert_allclose(ok.predict(np.full((1, 8, 8), 0.1, np.float32)), judge.predict(np.full((1, 8, 8), 0.1, np.float32)))
    from pytest_synthcxr.models.trust import sha256_of

    pinned = ProbeJudge("covid", pickled, ["COVID-19"], kind="state-dict", class_path="models_support:ProbeNet", allow_modules=mine, trusted_sha256=(sha256_of(pickled),))
    assert pinned.outputs == ("COVID-19",)  # a hash the user listed: loads without the flag


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"labels": ["A", "B", "C"]}, "the network gives outputs of shape (1, 2) for one image, but 3 labels are configured"),
        ({"labels": ["A", "B"], "kind": "state-dict", "class_path": "models_support:NoSuchNet", "allow_modules": ("models_support",)}, "module 'models_support' has no 'NoSuchNet'"),
        ({"labels": ["A", "B"], "kind": "state-dict", "class_path": "no_such_module:Net", "allow_modules": ("no_such_module",)}, "cannot import 'no_such_module'"),
        ({"labels": ["A", "B"], "kind": "state-dict", "class_path": "models_support:ProbeNet"}, "module 'models_support' is not allowed"),
        ({"labels": ["A", "B"], "threshold": [0.5]}, "threshold must be one value or 2 values in (0, 1)"),
    ],
)
def test_bad_probes_are_one_line_errors(tmp_path, kwargs, fragment):
    make_torchscript_probe(tmp_path / "probe.pt", 2)
    make_state_dict_probe(tmp_path / "probe.safetensors", 2)
    path = tmp_path / ("probe.safetensors" if kwargs.get("kind") == "state-dict" else "probe.pt")
    with pytest.raises(JudgeError) as err:
        ProbeJudge("p", path, **kwargs)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_probe_with_no_label_list_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match=r"judges.covid: a torchscript judge needs 'labels' \(one name per network output, in order\)"):
        _loaded(tmp_path, "[judges.covid]\nkind = 'torchscript'\npath = 'covid.pt'\n")
    with pytest.raises(SpecError, match=r"judges.covid: a state-dict judge needs 'class'"):
        _loaded(tmp_path, "[judges.covid]\nkind = 'state-dict'\npath = 'covid.safetensors'\nlabels = ['COVID-19']\n")


def test_judge_files_are_checked_before_any_test(tmp_path):
    text = "judge = ['phantom', 'covid']\n" + small_spec() + "[judges.covid]\nkind = 'torchscript'\npath = 'covid.pt'\nlabels = ['COVID-19']\n"
    with pytest.raises(ModelError, match=r"\[judges.covid\] path: weight file not found: .*covid.pt"):
        registry.check("phantom", "test", _loaded(tmp_path, text))
    make_torchscript_probe(tmp_path / "covid.pt", 1)
    registry.check("phantom", "test", _loaded(tmp_path, text))
    pickled = "judge = ['phantom', 'sd']\n" + small_spec() + "[judges.sd]\nkind = 'state-dict'\npath = 'sd.pt'\nclass = 'models_support:ProbeNet'\nallow_modules = ['models_support']\nlabels = ['COVID-19']\n"
    make_state_dict_probe(tmp_path / "sd.pt", 1)
    with pytest.raises(ModelError, match="--synthcxr-allow-pickle"):
        registry.check("phantom", "test", _loaded(tmp_path, pickled))
    registry.check("phantom", "test", _loaded(tmp_path, pickled), allow_pickle=True)


# -- ensembles -------------------------------------------------------------------------------------


class _Fixed:
    def __init__(self, name, outputs, scores):
        self.name, self.outputs, self.scores = name, tuple(outputs), np.asarray(scores, dtype=float)
        self.fingerprint, self.settings = name, {"name": name}

    def predict(self, images):
        return np.tile(self.scores, (len(images), 1))


def test_panel_averages_shared_outputs_and_reports_disagreement():
    a = _Fixed("a", ["Effusion", "Edema"], [0.9, 0.5])
    b = _Fixed("b", ["Effusion", "COVID-19"], [0.1, 0.7])
    c = _Fixed("c", ["Edema"], [0.5])
    panel = JudgePanel([a, b, c])
    assert panel.outputs == ("Effusion", "Edema", "COVID-19", "disagreement:Effusion", "disagreement:Edema")
    assert panel.outputs == panel_outputs([a.outputs, b.outputs, c.outputs])
    scores = panel.predict(np.zeros((2, 4, 4), np.float32))
    h = lambda p: -(p * np.log2(p) + (1 - p) * np.log2(1 - p))  # noqa: E731
    np.testing.assert_allclose(scores[0, :3], [0.5, 0.5, 0.7])
    # mutual information: H(mean) - mean H: judges split 0.9 / 0.1 -> 1 - H(0.9); agreeing judges -> 0
    np.testing.assert_allclose(scores[0, 3:], [1 - h(0.9), 0.0], atol=1e-9)
    assert panel.name == "a+b+c" and set(panel.settings["members"]) == {"a", "b", "c"}


def test_panel_of_phantom_and_probe_through_the_registry(tmp_path):
    make_torchscript_probe(tmp_path / "covid.pt", 2)
    text = "judge = ['phantom', 'covid']\n" + small_spec() + "[judges.covid]\nkind = 'torchscript'\npath = 'covid.pt'\nlabels = ['Effusion', 'COVID-19']\n"
    loaded = _loaded(tmp_path, text)
    registry.check("phantom", "test", loaded)
    judge = registry.load_judge("phantom", loaded, device="cpu")
    assert isinstance(judge, JudgePanel)
    assert "disagreement:Effusion" in judge.outputs and "disagreement:COVID-19" in judge.outputs
    assert judge.predict(np.full((1, 224, 224), 0.4, np.float32)).shape == (1, len(judge.outputs))


def test_a_torch_export_program_works_as_a_probe(tmp_path):
    import torch

    from models_support import ProbeNet

    net = ProbeNet(1).eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(net, (torch.zeros(2, 1, 64, 64),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(tmp_path / "covid.pt2"))
    judge = ProbeJudge("covid", tmp_path / "covid.pt2", ["COVID-19"], size=64)
    reference = ProbeJudge("ref", make_torchscript_probe(tmp_path / "covid.pt", 1), ["COVID-19"], size=64)
    images = np.random.default_rng(1).random((3, 64, 80), dtype=np.float32)
    np.testing.assert_allclose(judge.predict(images), reference.predict(images), atol=1e-6)


def test_a_map_that_merges_two_outputs_is_refused(tmp_path):
    make_torchscript_probe(tmp_path / "p.pt", 2)
    text = "judge = 'p'\n" + small_spec() + "[judges.p]\nkind = 'torchscript'\npath = 'p.pt'\nlabels = ['Effusion', 'COVID-19']\nmap = {'COVID-19' = 'Effusion'}\n"
    with pytest.raises(ModelError, match=r"judges.p\] map: two outputs would be named 'Effusion'"):
        registry.check("phantom", "test", _loaded(tmp_path, text))


def test_a_table_can_override_a_phantom_alias_and_presets_are_checked(tmp_path):
    make_torchscript_probe(tmp_path / "p.pt", 2)
    text = small_spec() + "[models.phantom-biased]\njudge = ['phantom', 'p']\n[judges.p]\nkind = 'torchscript'\npath = 'p.pt'\nlabels = ['Effusion', 'COVID-19']\n"
    loaded = _loaded(tmp_path, text)
    plan = registry.check("phantom-biased", "test", loaded)
    assert (plan.config.kind, plan.config.preset, plan.config.judge) == ("phantom", "phantom-biased", ["phantom", "p"])
    assert registry.load_generator("phantom-biased", loaded).name == "phantom-biased"
    with pytest.raises(ModelError, match=r"models.mine\] preset: unknown phantom preset 'nope'; known: phantom"):
        registry.check("mine", "test", _loaded(tmp_path, small_spec() + "[models.mine]\nkind = 'phantom'\npreset = 'nope'\n"))
