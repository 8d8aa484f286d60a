"""Public entry point ``python -m pytest_synthcxr.prompts`` (the manifest template of a
``folder:`` audit); the command lives in :mod:`pytest_synthcxr.plugin.prompts`."""

from .plugin.prompts import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
