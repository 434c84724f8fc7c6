"""``allyapi serve | migrate | token | seed --demo | purge | rotate-keys | backup PATH |
openapi [--check]``."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from allyapi.core.auth.tokens import KNOWN_ROLES, mint_dev_token
from allyapi.core.settings import Settings, load_settings
from allyapi.ops.contract import CONTRACT_PATH

DEMO_ORG = "demo"


def _migrate(settings: Settings) -> None:
    from allyapi.core.db.migrations import upgrade

    if settings.effective_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    _migrate(settings)
    print("schema is at head")
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    unknown = set(roles) - KNOWN_ROLES
    if unknown or not roles:
        print(f"roles must be among {sorted(KNOWN_ROLES)}", file=sys.stderr)
        return 2
    try:
        token = mint_dev_token(
            settings,
            sub=args.sub,
            org=args.org,
            roles=roles,
            ttl_seconds=args.ttl,
            name=args.name,
            country=args.country,
            department=args.department,
        )
    except ValueError as exc:
        print(f"allyapi token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    if not args.demo:
        print("nothing to seed: pass --demo", file=sys.stderr)
        return 2
    from allyapi.demo import seed_demo

    _migrate(settings)
    created = asyncio.run(seed_demo(settings, DEMO_ORG))
    print("demo organisation seeded" if created else "demo organisation already present")
    _print_demo_tokens(settings, base_url=None)
    return 0


def _print_demo_tokens(settings: Settings, base_url: str | None) -> None:
    from allyapi.demo import demo_tokens

    print("\nDevelopment tokens for the demo organisation (valid 8 hours):")
    for label, token in demo_tokens(settings, DEMO_ORG):
        print(f"  {label:<12} {token}")
    if base_url:
        if settings.expose_docs:
            print(f"\nDocs: {base_url}/docs")
        print(f'Try:  curl -H "Authorization: Bearer $TOKEN" {base_url}/v1/allies')


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    if args.workers < 1:
        print("allyapi: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1 and settings.effective_database_url.startswith("sqlite"):
        # One SQLite file takes one writer at a time, and processes queue for it with a busy
        # timeout: two workers under 50 concurrent writers answered 503 (docs/operations.md).
        print(
            "allyapi: --workers above 1 needs PostgreSQL (ALLYAPI_DATABASE_URL=postgresql+"
            "asyncpg://...); the embedded SQLite database is served by one process",
            file=sys.stderr,
        )
        return 2
    if not args.no_migrate:
        _migrate(settings)
    if args.demo:
        from allyapi.demo import seed_demo

        asyncio.run(seed_demo(settings, DEMO_ORG))
        _print_demo_tokens(settings, base_url=f"http://{args.host}:{args.port}")
    elif settings.expose_docs:
        print(f"Docs: http://{args.host}:{args.port}/docs")
    sys.stdout.flush()
    with metrics_directory():
        uvicorn.run(
            "allyapi.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            access_log=False,  # uvicorn's access log prints query strings; ours never does
            proxy_headers=True,
            timeout_graceful_shutdown=20,
            log_level=settings.log_level.lower(),
        )
    return 0


# The variable prometheus_client reads once, on import, to choose its multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_directory() -> Iterator[None]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the server about to start: the operator's if set, else
    a private temporary one removed at exit; emptied first either way, as prometheus_client
    requires (an earlier run's files would be summed into this run's counters). Ready before
    any process of the server imports ``prometheus_client``, which reads it once
    (core/metrics.py); this process does not import it."""
    given = os.environ.get(MULTIPROC_ENV)
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="allyapi-metrics-"))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)


def cmd_openapi(_: Settings | None, args: argparse.Namespace) -> int:
    """Write the contract, or with ``--check`` fail when the committed one is out of date."""
    from allyapi.ops.contract import openapi_document, render

    path: Path = args.output
    generated = render(openapi_document())
    if args.check:
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        if committed != generated:
            print(f"{path} is out of date: run `allyapi openapi`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generated, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def cmd_purge(settings: Settings, _: argparse.Namespace) -> int:
    """Every time-driven job once: expiry, retention purge (docs/privacy.md, P7), old
    idempotency keys, and the arrival of new contributions in the aggregates."""
    from allyapi.maintenance import purge

    counts, arrived = asyncio.run(purge(settings))
    print(f"expired pending requests: {counts.expired}")
    print(f"purged closed requests: {counts.purged}")
    print(f"deleted idempotency keys: {counts.idempotency_keys_deleted}")
    print(f"deleted audit events past retention: {counts.audit_events_deleted}")
    print(f"contributions arrived in the aggregates: {arrived}")
    return 0


def cmd_rotate_keys(settings: Settings, _: argparse.Namespace) -> int:
    """Re-seal values under the newest data key; exit 1 if some could not be (run again)."""
    from allyapi.maintenance import rotate_keys

    incomplete = False
    for label, count in asyncio.run(rotate_keys(settings)):
        print(
            f"{label}: resealed {count.resealed}, remaining {count.remaining}, "
            f"unreadable {count.unreadable}"
        )
        incomplete = incomplete or bool(count.remaining or count.unreadable)
    return 1 if incomplete else 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    """A consistent copy of the embedded SQLite database, safe while servers write to it."""
    from allyapi.core.db.backup import BackupRefused, backup_sqlite

    try:
        written = backup_sqlite(settings.effective_database_url, args.path)
    except BackupRefused as refused:
        print(f"allyapi: {refused}", file=sys.stderr)
        return 2
    print(f"backup written to {written}")
    print(
        "it holds ciphertext and pseudonyms: keep ALLYAPI_PSEUDONYM_KEY and ALLYAPI_DATA_KEYS "
        "apart from it (docs/operations.md)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="allyapi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (migrates first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--demo", action="store_true", help="seed a demo organisation and print tokens"
    )
    serve.add_argument("--no-migrate", action="store_true", help="do not run migrations first")
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="bring the schema to the newest migration")
    migrate.set_defaults(handler=cmd_migrate)

    token = commands.add_parser("token", help="mint a development token (HS256 issuer)")
    token.add_argument("--sub", required=True)
    token.add_argument("--org", required=True)
    token.add_argument(
        "--roles", required=True, help="comma-separated: " + ",".join(sorted(KNOWN_ROLES))
    )
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds (default 8 h)")
    token.add_argument("--name")
    token.add_argument("--country")
    token.add_argument("--department")
    token.set_defaults(handler=cmd_token)

    seed = commands.add_parser("seed", help="seed data")
    seed.add_argument("--demo", action="store_true", help="the demo organisation")
    seed.set_defaults(handler=cmd_seed)

    purge = commands.add_parser("purge", help="expire, purge after retention, drop old keys")
    purge.set_defaults(handler=cmd_purge)

    rotate = commands.add_parser("rotate-keys", help="re-seal stored text under the newest key")
    rotate.set_defaults(handler=cmd_rotate_keys)

    backup = commands.add_parser(
        "backup", help="copy the embedded SQLite database consistently (PostgreSQL: pg_dump)"
    )
    backup.add_argument("path", type=Path, help="a new file (an existing one is not replaced)")
    backup.set_defaults(handler=cmd_backup)

    openapi = commands.add_parser("openapi", help="write the OpenAPI contract (or --check it)")
    openapi.add_argument("--output", type=Path, default=CONTRACT_PATH)
    openapi.add_argument(
        "--check", action="store_true", help="exit 1 when the file differs from the app"
    )
    openapi.set_defaults(handler=cmd_openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # `openapi` builds the app from fixed settings: it must neither read .env nor make secrets.
    try:
        settings = None if args.command == "openapi" else load_settings()
    except ValidationError as exc:  # a configuration mistake: say which, without a traceback
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        print(f"allyapi: invalid configuration: {problems}", file=sys.stderr)
        sys.exit(2)
    sys.exit(args.handler(settings, args))
