"""The plugin as users run it (pytester): options, collection, errors. No images are generated here."""

import subprocess
import sys
from pathlib import Path

import pytest

SMALL_SPEC = (Path(__file__).parent.parent / "fixtures" / "specs" / "small.toml").read_text()


def test_help_block_is_pinned(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "synthetic chest X-ray generator audit:",
            "  --synthcxr-model=SYNTHCXR_MODEL",
            "*model alias or path to audit*",
            "  --synthcxr-spec=SYNTHCXR_SPEC",
            "  --synthcxr-report=SYNTHCXR_REPORT",
            "  --synthcxr-json=SYNTHCXR_JSON",
            "  --synthcxr-csv=SYNTHCXR_CSV",
            "  --synthcxr-seed=SYNTHCXR_SEED",
            "  --synthcxr-device=SYNTHCXR_DEVICE",
        ]
    )
    result.stdout.fnmatch_lines(["  synthcxr_model (string):", "*ini equivalent of --synthcxr-model"])


def test_without_a_model_the_plugin_adds_nothing(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.makefile(".toml", synthcxr=SMALL_SPEC)  # a spec without 'model' alone does not audit
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    assert "synthcxr::" not in result.stdout.str()


def test_collect_only_lists_stable_ids(pytester):
    """--synthcxr-model with the rootdir's synthcxr.toml: ids under that file (pasteable)."""
    pytester.makefile(".toml", synthcxr=SMALL_SPEC)
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "synthcxr.toml::bias[[]tpr-gap-Effusion-sex*race-named[]]",
            "synthcxr.toml::validity[[]sensitivity-Cardiomegaly[]]",
            "synthcxr.toml::validity[[]fpr-Effusion[]]",
            "synthcxr.toml::uncertainty[[]Cardiomegaly[]]",
            "synthcxr.toml::hallucination[[]COVID-19[]]",
            "*8 tests collected*",
        ]
    )


def test_builtin_spec_ids_read_synthcxr(pytester):
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["synthcxr::bias[[]tpr-gap-Effusion-sex*race-named[]]", "*tests collected*"])


def test_an_audit_file_runs_when_selected_not_on_a_bare_run(pytester):
    pytester.makefile(".toml", synthcxr='model = "phantom"\n' + SMALL_SPEC)
    pytester.makepyfile(test_unit="def test_ok():\n    pass\n")
    bare = pytester.runpytest("--collect-only", "-q")
    bare.stdout.fnmatch_lines(["test_unit.py::test_ok", "*1 test collected*"])
    for args in (["synthcxr.toml"], ["."]):
        result = pytester.runpytest(*args, "--collect-only", "-q")
        result.stdout.fnmatch_lines(["*9 tests collected*"] if args == ["."] else ["*8 tests collected*"])
    unit = pytester.runpytest("test_unit.py", "--collect-only", "-q")
    unit.stdout.fnmatch_lines(["*1 test collected*"])


def test_keyword_and_marker_selection(pytester):
    pytester.makefile(".toml", synthcxr=SMALL_SPEC)
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q", "-k", "Effusion and not named")
    result.stdout.fnmatch_lines(["*validity[[]sensitivity-Effusion[]]", "*3/8 tests collected (5 deselected)*"])
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q", "-m", "hallucination or uncertainty")
    result.stdout.fnmatch_lines(["*3/8 tests collected (5 deselected)*"])
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q", "-m", "synthcxr and not bias", "--strict-markers")
    result.stdout.fnmatch_lines(["*7/8 tests collected (1 deselected)*"])


def test_unknown_model_lists_known_ones(pytester):
    result = pytester.runpytest("--synthcxr-model=roentgen-xl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: synthcxr: unknown model 'roentgen-xl' (from --synthcxr-model); known models: phantom, phantom-biased, phantom-fair, phantom-regressed, roentgen, roentgen-v2; or a diffusers pipeline folder*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("[[bias]]\nstatistic = 'gap'\nmax = 2\n", "synthcxr.toml: bias[0].max: Input should be less than or equal to 1 (got 2)"),
        ("findings = ['Effusion', 'Nodule']\n", "synthcxr.toml: findings[1]: Input should be"),
        ("samples_per_cell = 'many'\n", "synthcxr.toml: samples_per_cell: Input should be a valid integer"),
        ("[subgroups]\nsex = ['other']\n", "synthcxr.toml: subgroups.sex[0]: Input should be 'female' or 'male' (got 'other')"),
        ("seed = \n", "synthcxr.toml: invalid TOML"),
    ],
)
def test_malformed_spec_is_one_clear_error(pytester, body, fragment):
    pytester.makefile(".toml", synthcxr=body)
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--synthcxr-model=phantom")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "Traceback" not in err + result.stdout.str()
    error_lines = [line for line in err.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1 and fragment in error_lines[0]


def test_missing_spec_file(pytester):
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-spec=nowhere.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: synthcxr: spec file not found: *nowhere.toml"])


@pytest.mark.parametrize("option, value", [("--synthcxr-seed", "-3"), ("--synthcxr-seed", "abc"), ("--synthcxr-device", "tpu")])
def test_bad_option_values_are_usage_errors(pytester, option, value):
    result = pytester.runpytest(f"{option}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stderr.str()


def test_ini_keys_configure_the_audit(pytester):
    """The ini model is the default of audit files that name none; it starts no audit by itself."""
    pytester.makefile(".toml", audit=SMALL_SPEC)
    pytester.makeini("[pytest]\nsynthcxr_model = phantom\nsynthcxr_seed = 5\n")
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*no tests collected*"])
    result = pytester.runpytest("audit.toml", "--collect-only")
    result.stdout.fnmatch_lines(["synthcxr: *audit.toml: model phantom, seed 5, 8 checks", "*8 tests collected*"])


def test_plugin_import_is_cheap():
    """Loading the plugin (every pytest run does) must not import heavy packages."""
    code = (
        "import sys, pytest_synthcxr.plugin\n"
        "heavy = [m for m in ('torch', 'diffusers', 'torchxrayvision', 'pandas', 'jinja2', 'scipy', 'statsmodels', 'pydantic') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unrelated_pytest_run_imports_nothing_heavy(pytester):
    """A run without a model (the plugin's hooks all run) stays as cheap as the import."""
    pytester.makeconftest(
        "import sys\n"
        "def pytest_sessionfinish(session):\n"
        "    heavy = [m for m in ('torch', 'diffusers', 'torchxrayvision', 'pandas', 'jinja2', 'scipy', 'statsmodels', 'pydantic',"
        " 'pytest_synthcxr.spec.schema', 'pytest_synthcxr.plugin.session') if m in sys.modules]\n"
        "    print('HEAVY', heavy)\n"
    )
    pytester.makepyfile("def test_one():\n    assert True\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:randomly", "-p", "no:html")  # pytest-html imports jinja2 itself
    result.stdout.fnmatch_lines(["*HEAVY []"])
