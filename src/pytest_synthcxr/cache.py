"""Public entry point ``python -m pytest_synthcxr.cache merge A B ... --into C`` (merge sample
caches and the shards of a distributed audit); the command lives in
:mod:`pytest_synthcxr.sampling.merge`."""

from .sampling.merge import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
