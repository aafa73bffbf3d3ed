"""Command-line entry points of the service: ``erasable serve``, ``erasable keys ...``, ``erasable ledger ...``.

They are registered on the main ``erasable`` app in :mod:`erasable.cli`. Every command takes
the ledger as ``--store`` (a SQLite path or a PostgreSQL URL), or from ``$ERASABLE_STORE`` so
that a database password need not appear on a command line.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from erasable.ledger.keys import SCOPES, ApiKey, KeyRing
from erasable.ledger.store import LedgerError, LedgerStore
from erasable.model import Model
from erasable.model_file import load_model, save_model
from erasable.service.guard import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_MAX_CLASSES,
    DEFAULT_MAX_CONNECTIONS,
)
from erasable.terminal import Command, Group, JsonFlag, console, err_console, fail, print_json, user_errors

__all__ = ["keys_app", "ledger_app", "open_store", "serve"]

StoreOption = Annotated[
    str,
    typer.Option(
        "--store",
        envvar="ERASABLE_STORE",
        help="The ledger: a SQLite file or a postgresql+psycopg:// URL.",
    ),
]


def open_store(store: str, *, create: bool = False) -> LedgerStore:
    """The ledger at ``store``. A SQLite file that does not exist is created only with ``create``
    (``serve``, ``keys create``); the commands that read a ledger refuse it, so a typo creates nothing."""
    path = store.removeprefix("sqlite:///") if store.startswith("sqlite:///") else None if "://" in store else store
    if not create and path is not None and not Path(path).expanduser().is_file():
        fail(f"No ledger at {path}: give an existing one with --store (or $ERASABLE_STORE).")
    try:
        return LedgerStore(store)
    except Exception as exc:  # any driver error: say what could not be opened, without a traceback
        fail(f"Cannot open the ledger {store!r}: {exc}")


def serve(
    store: StoreOption = "erasable.db",
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps the service local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    max_body_mb: Annotated[int, typer.Option(min=1, help="Largest request body accepted, in MiB.")] = 64,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections served at once; one more is answered 503 and closed.")
    ] = DEFAULT_MAX_CONNECTIONS,
    header_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds for a request's head to arrive (else 408 and closed).")
    ] = DEFAULT_HEAD_TIMEOUT,
    body_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds for a request's body to arrive after its head (else 408).")
    ] = DEFAULT_BODY_TIMEOUT,
    max_classes: Annotated[
        int, typer.Option(min=1, help="Classes a model may have; a learn beyond is refused (422).")
    ] = DEFAULT_MAX_CLASSES,
    public_metrics: Annotated[
        bool, typer.Option("--public-metrics", help="Serve /metrics without a key (it names every model).")
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    blas_threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="Threads of each numpy/scipy BLAS call and integer Gram (not the text encoder's torch). 1: "
            "requests already run in parallel threads, and BLAS threads of concurrent requests contend (32 "
            "clients on 2 cores: 203 predictions/s at 1, 34-90 at 2).",
        ),
    ] = 1,
    model_file: Annotated[
        Path | None,
        typer.Option(help="Serve this model file read-only (instead of --store); a key for this run is printed."),
    ] = None,
) -> None:
    """Run the HTTP service (FastAPI + uvicorn) over a ledger (a new SQLite file is created); OpenAPI docs at /docs.

    Make a key first: erasable keys create --store erasable.db --scope admin

    With --model-file, the file is served read-only from a throwaway ledger: predictions, info,
    verification and the event log work, learn / forget / steer / create / delete get 405. The
    key (predict and admin on that model) is printed on stderr and lasts as long as the server.

    The console for deletion requests is at /console (sign in there with a key).

    Example: erasable serve --store erasable.db --port 8000
    """
    import uvicorn
    from threadpoolctl import threadpool_info, threadpool_limits

    from erasable import integer_gram
    from erasable.service.app import create_app
    from erasable.service.guard import guarded_protocol
    from erasable.service.read_only import ReadOnly

    threadpool_limits(limits=blas_threads)  # for the server's life: numpy's and scipy's BLAS are loaded by now
    integer_gram.limit_threads(blas_threads)
    threads = sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
    err_console.print(f"BLAS threads per call: {', '.join(map(str, threads)) or 'unknown (no BLAS found to limit)'}")
    protocol = guarded_protocol(max_connections=max_connections, head_timeout=header_timeout, body_timeout=body_timeout)
    options: dict[str, Any] = {
        "max_body": max_body_mb * 2**20,
        "max_classes": max_classes,
        "public_metrics": public_metrics,
    }
    if model_file is None:
        app: Any = create_app(open_store(store, create=True), **options)
        uvicorn.run(app, host=host, port=port, log_level=log_level, http=protocol)
        return
    with tempfile.TemporaryDirectory(prefix="erasable-serve-") as scratch:
        with user_errors(LedgerError):
            ledger = open_store(str(Path(scratch) / "ledger.db"), create=True)
            name = _import_file(ledger, model_file, None)
            token, _ = KeyRing(ledger).create(model=name, scopes=["predict", "admin"], description="serve --model-file")
        err_console.print(
            f"Serving {model_file} read-only as model {name!r}; key for this run: {token}", soft_wrap=True
        )
        app = ReadOnly(create_app(ledger, **options), str(model_file))
        uvicorn.run(app, host=host, port=port, log_level=log_level, http=protocol)


keys_app = typer.Typer(cls=Group, help="API keys: scoped, per model, stored hashed (a token is shown only when made).")


@keys_app.command("create", cls=Command)
def create_key(
    scope: Annotated[list[str], typer.Option("--scope", help=f"One of {', '.join(SCOPES)}; repeat for more.")],
    store: StoreOption = "erasable.db",
    model: Annotated[str, typer.Option(help="The model the key is for; '*' for every model.")] = "*",
    description: Annotated[str, typer.Option(help="A note to recognize the key by.")] = "",
    expires_in_days: Annotated[
        float | None, typer.Option(min=0.001, help="Days until the key expires (default: valid until revoked).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Make a key and print its token once (a new SQLite ledger is created).

    Example: erasable keys create --store erasable.db --model bank --scope predict --scope learn --expires-in-days 90
    """
    expires_in = None if expires_in_days is None else timedelta(days=expires_in_days)
    with user_errors(LedgerError):
        ring = KeyRing(open_store(store, create=True))
        token, key = ring.create(model=model, scopes=scope, description=description, expires_in=expires_in)
    if as_json:
        print_json({**_key_facts(key), "token": token})
        return
    expiry = f", expires {key.expires_at}" if key.expires_at else ""
    console.print(f"key {key.key_id} for model {key.model!r}, scopes {', '.join(sorted(key.scopes))}{expiry}")
    print(token)


def _key_facts(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "model": key.model,
        "scopes": sorted(key.scopes),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "expired": key.expired(),
        "description": key.description,
    }


@keys_app.command("list", cls=Command)
def list_keys(store: StoreOption = "erasable.db", as_json: JsonFlag = False) -> None:
    """List the keys (ids, models, scopes; never secrets)."""
    keys = KeyRing(open_store(store)).list()
    if as_json:
        print_json([_key_facts(key) for key in keys])
        return
    table = Table("key id", "model", "scopes", "created", "expires", "description")
    for key in keys:
        expires = "never" if key.expires_at is None else key.expires_at + (" (expired)" if key.expired() else "")
        scopes = ",".join(sorted(key.scopes))
        table.add_row(key.key_id, key.model, scopes, key.created_at, expires, key.description)
    console.print(table)


@keys_app.command("revoke", cls=Command)
def revoke_key(key_id: str, store: StoreOption = "erasable.db") -> None:
    """Delete a key: requests with it get 401 from now on."""
    with user_errors(LedgerError):
        KeyRing(open_store(store)).revoke(key_id)
    console.print(f"revoked {key_id}")


ledger_app = typer.Typer(cls=Group, help="Inspect and maintain a ledger.")


@ledger_app.command("verify", cls=Command)
def verify(model: str, store: StoreOption = "erasable.db") -> None:
    """Check a model's hash chain and recompute its state from the stored samples; exit 1 if anything is off."""
    with user_errors(LedgerError):
        result = open_store(store).verify(model)
    chain = "ok" if result.chain.ok else f"BROKEN: {result.chain.reason}"
    console.print(f"events: {result.chain.events}, chain {chain}")
    console.print(f"certificate recorded:   {result.certificate_recorded}")
    console.print(f"certificate recomputed: {result.certificate_recomputed}")
    console.print(f"live ids match the log: {result.live_ids_match_log}")
    console.print("[green]verified[/green]" if result.ok else "[red]verification failed[/red]")
    if not result.ok:
        raise typer.Exit(1)


@ledger_app.command("import", cls=Command)
def import_model(
    model_file: Annotated[Path, typer.Argument(metavar="MODEL_FILE", help="A model file (erasable learn / save).")],
    name: Annotated[
        str | None, typer.Option(help="Name of the model in the ledger.", show_default="the file's stem")
    ] = None,
    store: StoreOption = "erasable.db",
    as_json: JsonFlag = False,
) -> None:
    """Put a model file into the ledger as a new model: its samples as one learn event, then its steering.

    The ledger's certificate equals the file's (checked); a failure leaves no model behind.

    Example: erasable ledger import bank.erasable --store models.db
    """
    with user_errors(LedgerError):
        target = _import_file(open_store(store, create=True), model_file, name)
        model = open_store(store).load_model(target)
    _report_interchange(as_json, f"Imported {model_file} as {target!r}", model.certificate(), model.count)


def _import_file(ledger: LedgerStore, model_file: Path, name: str | None) -> str:
    """Put ``model_file`` into ``ledger`` as a new model (named ``name`` or the file's stem); no model on failure."""
    model = load_model(model_file)
    target = name or model_file.stem
    ledger.create_model(target, model.config)
    try:
        _copy_into(ledger, target, model, source=f"import:{model_file.name}")
    except BaseException:
        ledger.delete_model(target)
        raise
    return target


def _copy_into(ledger: LedgerStore, name: str, model: Model, source: str) -> None:
    """Commit ``model``'s live samples and steering to the (new, empty) model ``name``; same certificate."""
    copy = ledger.load_model(name)
    if model.count:
        vectors = model.registry.embeddings.astype(np.float64) / 2**model.config.scale_bits  # exact: e_q comes back
        change = copy.plan_learn(
            vectors, model.registry.labels, ids=model.registry.ids, subjects=model.registry.subjects
        )
        ledger.commit(name, change, source=source)
    if model.steering:
        ledger.commit_steering(name, model.steering)
    stored = ledger.load_model(name).certificate()
    if stored != model.certificate():
        raise LedgerError(f"The ledger's certificate {stored} differs from the file's {model.certificate()}.")
    ledger.keep_ridge_head(name, model)  # the file's: a server then predicts without solving it


@ledger_app.command("export", cls=Command)
def export_model(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The model in the ledger.")],
    model_file: Annotated[Path, typer.Argument(metavar="MODEL_FILE", help="The model file to write.")],
    store: StoreOption = "erasable.db",
    as_json: JsonFlag = False,
) -> None:
    """Write a ledger's model (its live samples, statistics and steering) to a model file; same certificate.

    Example: erasable ledger export bank bank.erasable --store models.db
    """
    with user_errors(LedgerError):
        if model_file.exists():
            fail(f"{model_file} exists: export writes a new file (remove it first).")
        model = open_store(store).load_model(name)
        save_model(model, model_file)
    _report_interchange(as_json, f"Exported {name!r} to {model_file}", model.certificate(), model.count)


def _report_interchange(as_json: bool, what: str, certificate: str, samples: int) -> None:
    if as_json:
        print_json({"samples": samples, "certificate": certificate})
    else:
        console.print(f"{what}: {samples} samples, certificate {certificate} on both sides.", soft_wrap=True)


@ledger_app.command("compact", cls=Command)
def compact(store: StoreOption = "erasable.db") -> None:
    """Rewrite the store without free space (VACUUM; on PostgreSQL VACUUM FULL + CHECKPOINT)."""
    open_store(store).compact()
    console.print("compacted")
