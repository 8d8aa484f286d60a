"""Repeated audits of the phantom world with different base seeds give the same verdicts when the
truth is far from every threshold (a gate must not flip from run to run)."""

import json

SPEC = """
# phantom-biased truth, far from each bound: COVID-19 flagged on ~42% of images (max 0.1),
# Effusion drawn in ~45% of plain prompts that ask for it (omission 0.4 for men, 0.7 for women;
# min sensitivity 0.2), a perceived-sex TPR gap of about 0.3 on plain prompts (max 0.7)
samples_per_cell = 128
findings = ["Effusion"]

[subgroups]
sex = ["female", "male"]
race = ["White"]

[[bias]]
metric = "tpr"
statistic = "gap"
by = ["sex"]
prompt = "plain"
max = 0.7

[validity]
min_sensitivity = 0.2

[hallucination]
max_rate = 0.1
"""
EXPECTED = {
    "bias[tpr-gap-Effusion-sex-perceived]": "pass",
    "validity[sensitivity-Effusion]": "pass",
    "hallucination[COVID-19]": "fail",
}


def test_verdicts_do_not_depend_on_the_base_seed(pytester):
    pytester.makefile(".toml", synthcxr=SPEC)
    estimates = []
    for seed in (1, 2, 3):
        out = f"seed{seed}.json"
        result = pytester.runpytest(
            "--synthcxr-model=phantom-biased", f"--synthcxr-seed={seed}", f"--synthcxr-json={out}", "--synthcxr-no-cache", "-p", "no:cacheprovider"
        )
        items = json.loads((pytester.path / out).read_text())["items"]
        assert {i["check"]: i["verdict"] for i in items} == EXPECTED, f"seed {seed}"
        result.assert_outcomes(passed=2, failed=1)
        estimates.append(tuple(i["estimate"] for i in items))
    assert len(set(estimates)) > 1  # the seeds did draw different images
