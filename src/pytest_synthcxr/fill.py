"""Public entry point ``python -m pytest_synthcxr.fill`` (fill the sample cache from any launcher);
the command lives in :mod:`pytest_synthcxr.plugin.fill`."""

from .plugin.fill import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
