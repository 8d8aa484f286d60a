"""The JSON report's version, its schema, and the anchors its items get in the HTML report.

Standard library only: the plugin may import this while pytest starts (baseline checks,
pytest-html links) without pulling in numpy, pandas or jinja2.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

#: Bumped on any incompatible change of the JSON layout (report_schema.json says the same).
SCHEMA_VERSION = 1


def load_schema() -> dict[str, Any]:
    """The JSON schema of the report (draft 2020-12), shipped as report_schema.json."""
    return json.loads(resources.files(__package__).joinpath("report_schema.json").read_text(encoding="utf-8"))


def anchor(nodename: str) -> str:
    """HTML id of an item's section: 'bias[tpr-gap-Effusion-sex*race]' -> 'item-bias-tpr-gap-Effusion-sex-race'."""
    return "item-" + re.sub(r"[^A-Za-z0-9_]+", "-", nodename).strip("-")
