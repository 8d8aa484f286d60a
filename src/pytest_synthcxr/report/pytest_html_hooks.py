"""pytest-html integration: its report links to the audit report and shows each item's numbers.

Registered by the plugin only when pytest-html is active (its hook specifications exist only
then). Standard library only; every value written into pytest-html's page is escaped.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any

from .schema import anchor

#: the per-item numbers the plugin records as user properties (also in JUnit XML)
NUMBERS = ("verdict", "estimate", "ci_low", "ci_high", "threshold", "n")


class PytestHtmlHooks:
    def __init__(self, audit: Any, config: Any) -> None:
        self.audit = audit
        self.config = config

    def _link(self) -> str | None:
        """The audit report's path relative to pytest-html's report (both may move together)."""
        target = self.audit.options.report
        html_path = getattr(self.config.option, "htmlpath", None)
        if target is None:
            return None
        if not html_path:
            return Path(target).as_uri()
        start = Path(html_path).absolute().parent
        return Path(os.path.relpath(Path(target).absolute(), start)).as_posix()

    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str], session: Any) -> None:
        counts = self.audit.verdict_counts()
        text = ", ".join(f"{n} {k}" for k, n in counts.items())
        link = self._link()
        where = f' <a href="{escape(link, quote=True)}">Open the audit report</a>.' if link else ""
        prefix.append(f'<p class="synthcxr-summary">synthcxr audit of <code>{escape(self.audit.options.model)}</code>: {escape(text)}.{where}</p>')

    def pytest_html_results_table_html(self, report: Any, data: list[str]) -> None:
        props = dict(report.user_properties)
        if "verdict" not in props or "::" not in report.nodeid:  # not an audit item
            return
        name = report.nodeid.rsplit("::", 1)[1]  # <spec file>::<item> or synthcxr::<item>
        parts = [
            f"verdict {props['verdict']}",
            f"estimate {props['estimate']}",
            f"interval [{props['ci_low']}, {props['ci_high']}]",
            f"threshold {props['threshold']}",
            f"n {props['n']}",
        ]
        link = self._link()
        more = f' <a href="{escape(link + "#" + anchor(name), quote=True)}">plots</a>' if link else ""
        data.append(f'<div class="synthcxr-item">{escape("; ".join(parts))}{more}</div>')
