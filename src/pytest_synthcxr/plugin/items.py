"""The audit's pytest items: one per check, their failure text, and the warnings they raise."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..checks import Check, Result
    from .session import AuditSession

FAMILY_MARKERS = {
    "bias": "subgroup disparity checks (TPR, selection rate)",
    "compare": "candidate vs released model on the same prompts and seeds (--synthcxr-baseline-model)",
    "validity": "does the model draw what it was asked (sensitivity, FPR, AUROC)",
    "uncertainty": "judge uncertainty (predictive entropy) checks",
    "hallucination": "out-of-training probe detection (e.g. COVID-19) checks",
    "versus-real": "synthetic-minus-real bounds on judge metrics (needs a reference set)",
    "fidelity": "Frechet distance of judge features, synthetic vs reference",
    "diversity": "MS-SSIM between images of the same prompt",
    "memorization": "synthetic images nearly identical to a reference image",
    "demographic": "does the image show the sex / race its prompt named (attribute judges)",
    "fuzz": "property-based prompt fuzzing (hypothesis search over counterfactual prompt pairs)",
}
AUDIT_KEY = pytest.StashKey["AuditSession"]()
#: the run's audits (plugin.run.AuditRun)
RUN_KEY = pytest.StashKey[Any]()


class SynthCXRInconclusiveWarning(pytest.PytestWarning):
    """An audit item whose interval still straddles its threshold after the sample budget."""


class SynthCXRJudgeWarning(pytest.PytestWarning):
    """An audit item whose verdict reads a judge output that the labelled reference set shows
    biased across the subgroups it judges, or uncalibrated."""


class AuditFailure(Exception):
    """A failed (or inconclusive, when configured to fail) audit item; str() is its one-line message."""


class AuditItem(pytest.Item):
    def __init__(self, *, check: "Check", audit: "AuditSession", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.audit = audit
        self.add_marker("synthcxr")
        self.add_marker(check.family)

    def runtest(self) -> None:
        result = self.audit.evaluate(self.check)
        self._record(result)
        for reason in self.audit.judge_concerns(self.check):
            warnings.warn(SynthCXRJudgeWarning(f"{self.name}: {reason}"), stacklevel=1)
        if result.verdict == "pass":
            return
        message = result.message()
        if result.verdict == "fail":
            raise AuditFailure(message)
        policy = self.audit.spec.inconclusive
        if policy == "xfail":
            pytest.xfail(message)
        elif policy == "skip":
            pytest.skip(message)
        elif policy == "warn":
            warnings.warn(SynthCXRInconclusiveWarning(f"{self.name}: {message}"), stacklevel=1)
        else:
            raise AuditFailure(message)

    def _record(self, result: "Result") -> None:
        e = result.estimate
        self.user_properties += [
            ("verdict", result.verdict),
            ("estimate", f"{e.value:.6g}"),
            ("ci_low", f"{e.low:.6g}"),
            ("ci_high", f"{e.high:.6g}"),
            ("threshold", f"{result.threshold:g}"),
            ("n", str(e.n)),
        ]
        if result.familywise is not None:  # a fail's label from the fail-side correction; it blocks either way
            self.user_properties.append(("familywise", str(result.familywise).lower()))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AuditFailure):
            return str(excinfo.value)
        from ..spec.schema import SpecError  # here, not at plugin import: only a failing item pays for it

        if isinstance(excinfo.value, SpecError):  # e.g. reader labels of another model's images: its one line
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"synthcxr: {self.name}"
