"""Run a reader study, or export its labels.

    python -m pytest_synthcxr.reader --spec S --cache-dir C [--reference R] [--port P] [--reader-id ID ...]
    python -m pytest_synthcxr.reader export --labels C/reader-labels.sqlite --out labels.csv

The server prints one URL with the session's token; open it in a browser on the same machine.
Labels go to C/reader-labels.sqlite unless --labels says otherwise.
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

LABELS_NAME = "reader-labels.sqlite"
INSTALL_HINT = "synthcxr reader: the reading page needs FastAPI and uvicorn: pip install 'pytest-synthcxr[reader]'"


def questions_of(spec: object) -> tuple[str, ...]:
    """What a reader is asked per image: the spec's findings, then its hallucination probes."""
    probes = [p for h in getattr(spec, "hallucination", []) for p in h.probes]
    return tuple(dict.fromkeys([*spec.findings, *probes]))  # type: ignore[attr-defined]


def _export(argv: Sequence[str]) -> int:
    from .store import LabelStore

    parser = argparse.ArgumentParser(prog="python -m pytest_synthcxr.reader export", description="Write a study's labels as CSV.")
    parser.add_argument("--labels", type=Path, required=True, help="the labels database (reader-labels.sqlite)")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    if not args.labels.is_file():
        print(f"synthcxr reader: labels database not found: {args.labels}", file=sys.stderr)
        return 2
    try:
        n = LabelStore(args.labels).export_csv(args.out)
    except (sqlite3.Error, OSError) as exc:
        print(f"synthcxr reader: cannot export {args.labels} to {args.out}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    print(f"synthcxr reader: {n} labels written to {args.out}")
    return 0


def _count(low: int, high: int) -> object:
    """An argparse type: an integer in [low, high], else a usage error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_synthcxr.reader", description=__doc__.split("\n\n")[0],
        epilog="python -m pytest_synthcxr.reader export --labels DB --out CSV writes a study's labels as CSV (docs/reader.md)",
    )
    parser.add_argument("--spec", type=Path, default=None, help="audit spec TOML (default: found in the current folder, else built-in)")
    parser.add_argument("--cache-dir", type=Path, required=True, help="the audit's sample cache (images must be stored: cache_images)")
    parser.add_argument("--reference", default=None, help="reference set for the real-or-synthetic task (default: the spec's)")
    parser.add_argument("--labels", type=Path, default=None, help=f"labels database (default: CACHE_DIR/{LABELS_NAME})")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=_count(0, 65535), default=8765, help="port (default: 8765; 0 picks a free one)")
    parser.add_argument("--reader-id", nargs="*", default=[], help="allowed reader ids (default: any id typed on the start page)")
    parser.add_argument("--per-cell", type=_count(1, 100_000), default=5, help="findings task: images per cell (default: 5)")
    parser.add_argument("--versus-images", type=_count(2, 100_000), default=40, help="real-or-synthetic task: images in all, half real (default: 40)")
    parser.add_argument("--seed", type=int, default=None, help="base seed (default: the spec's; must match the audit's)")
    parser.add_argument("--generator", default=None, help="generator fingerprint, where the cache holds several models")
    return parser


def prepare(args: argparse.Namespace) -> tuple[object, object]:
    """(study, store) for the parsed arguments; raises SystemExit with one line on bad input."""
    from ..checks import build_checks
    from ..reference.readers import ReferenceError, load_reference
    from ..spec.schema import SpecError, find_spec_file, load_spec
    from .store import LabelStore
    from .study import StudyError, build_study

    try:
        loaded = load_spec(args.spec if args.spec is not None else find_spec_file(Path.cwd()))
        spec = loaded.spec
        seed = spec.seed if args.seed is None else args.seed
        reference = None
        value, base = (args.reference, Path.cwd()) if args.reference else (spec.reference, loaded.path.parent if loaded.path else Path.cwd())
        if value:
            reference = load_reference(value, base, seed=seed, max_images=spec.reference_samples, findings=spec.findings)
        study = build_study(
            build_checks(spec.model_copy(update={"reader": None})),  # the study may be what makes the labels
            args.cache_dir, base_seed=seed, questions=questions_of(spec), per_cell=args.per_cell,
            reference=reference, versus_images=args.versus_images, generator=args.generator,
        )
    except (SpecError, ReferenceError, StudyError, ValueError) as exc:
        raise SystemExit(str(exc)) from None
    labels = args.labels or args.cache_dir / LABELS_NAME
    try:
        return study, LabelStore(labels)
    except (sqlite3.Error, OSError) as exc:
        raise SystemExit(f"synthcxr reader: labels database {labels} is not usable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["export"]:
        return _export(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        import uvicorn

        from .app import create_app
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    study, store = prepare(args)
    token = secrets.token_urlsafe(24)
    hosts = tuple(dict.fromkeys(["127.0.0.1", "localhost", args.host]))
    app = create_app(study, store, token=token, hosts=hosts, readers=tuple(args.reader_id))  # type: ignore[arg-type]
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    import socket

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"synthcxr reader: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    sock.listen(128)  # listening before the address is printed: a reader who opens it at once gets the page
    port = sock.getsockname()[1]
    print(
        f"synthcxr reader: {len(study.findings)} findings images, {len(study.versus)} real-or-synthetic images; "  # type: ignore[attr-defined]
        f"labels in {store.path}",  # type: ignore[attr-defined]
        flush=True,
    )
    shown = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address needs brackets in a URL
    print(f"synthcxr reader: open http://{shown}:{port}/?token={token}", flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
