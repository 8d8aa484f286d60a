"""What may run code when a model or judge loads, and what may not without being asked.

Two things in a spec can run code: a pickle weight file (torch.load with weights_only=False,
which torchxrayvision's own loaders use) and a ``class = "module:attr"`` that names a callable.
A spec often comes from a pull request, so neither is trusted by default:

- a pickle file named by the spec loads only with ``--synthcxr-allow-pickle``, or when its SHA-256
  is one the package pins (official torchxrayvision release files) or one the judge table lists
  under ``sha256``;
- a class resolves only from :data:`ALLOWED_CLASS_MODULES` (and their submodules) or from
  modules the judge table lists under ``allow_modules`` (an explicit opt-in), never from any
  other string (``os:system`` is refused).

Standard library only: :mod:`..registry` calls this before any test runs.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

#: SHA-256 of official torchxrayvision release files (basename -> hash). Empty on purpose: the
#: hashes could not be verified against the release assets when this was written (no network),
#: and an invented hash would be worse than none. Users pin the files they trust under the judge
#: table's ``sha256`` key (``sha256sum <file>``); add verified official hashes here.
PINNED_SHA256: dict[str, str] = {}

#: modules (and their submodules) a ``class = "module:attr"`` may name without an opt-in
ALLOWED_CLASS_MODULES: tuple[str, ...] = ("torch.nn", "torchvision.models", "torchxrayvision", "timm")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ATTR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

ERR_PICKLE_UNTRUSTED = (
    "synthcxr: judge {judge!r}: {path} is a pickle file (loading it can run code) and its SHA-256 "
    "{sha} is neither a pinned torchxrayvision release nor listed in [tool.synthcxr.judges.{judge}] sha256; "
    "list the hash there if you trust the file, or pass --synthcxr-allow-pickle"
)
ERR_CLASS_FORM = "synthcxr: judge {judge!r}: class must read 'package.module:ClassName', got {spec!r}"
ERR_CLASS_MODULE = (
    "synthcxr: judge {judge!r}: class {spec!r}: module {module!r} is not allowed; classes load only from "
    "{allowed} or a module listed in [tool.synthcxr.judges.{judge}] allow_modules"
)


def is_sha256(value: str) -> bool:
    return bool(_SHA256.match(value))


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pickle_refusal(path: Path, judge: str, *, allow_pickle: bool, trusted: Iterable[str] = ()) -> str | None:
    """None when the pickle at `path` may be loaded; otherwise the one-line reason it may not."""
    if allow_pickle:
        return None
    try:
        sha = sha256_of(path)
    except OSError as exc:
        return f"synthcxr: judge {judge!r}: cannot read {path}: {exc.strerror or type(exc).__name__}"
    if sha in set(PINNED_SHA256.values()) or sha in {t.lower() for t in trusted}:
        return None
    return ERR_PICKLE_UNTRUSTED.format(judge=judge, path=path, sha=sha)


def class_refusal(spec: str, judge: str, allow_modules: Iterable[str] = ()) -> str | None:
    """None when ``module:attr`` names an allowed module; otherwise the one-line reason.
    Checks the string only: nothing is imported here."""
    module, sep, attr = spec.partition(":")
    if not sep or not _MODULE.match(module) or not _ATTR.match(attr) or any(p.startswith("__") for p in attr.split(".")):
        return ERR_CLASS_FORM.format(judge=judge, spec=spec)
    allowed = (*ALLOWED_CLASS_MODULES, *allow_modules)
    if not any(module == a or module.startswith(a + ".") for a in allowed):
        return ERR_CLASS_MODULE.format(judge=judge, spec=spec, module=module, allowed=", ".join(ALLOWED_CLASS_MODULES))
    return None
