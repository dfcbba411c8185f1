"""The `graphmem` command line: ingest through the Dagster instance, query and inspect the graph."""

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from graphmem_core.batches import register_batch
from graphmem_core.errors import ConfigurationError, GraphmemError
from graphmem_core.settings import Settings, validate_namespace
from graphmem_dagster.cli_streaming import add_streaming_commands

if TYPE_CHECKING:
    from graphmem_core.stores.base import GraphStore

logger = logging.getLogger("graphmem")

JOB_NAME = "ingest"
CODE_MODULE = "graphmem_dagster.definitions"
PARTITIONS_NAME = "batches"

# Launch runs at once, so `dagster job launch` and `graphmem ingest` work without a daemon.
_DIRECT_COORDINATOR_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
"""

# Queue runs and let the daemon start at most four at a time (three Kafka batches), as in the project's dagster.postgres.yaml.
_QUEUED_COORDINATOR_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: graphmem/source
        value: kafka
        limit: 3
"""

_COMMON_INSTANCE_YAML = """\
run_launcher:
  module: dagster.core.launcher
  class: DefaultRunLauncher
python_logs:
  python_log_level: INFO
  managed_python_loggers:
    - graphmem_core
    - graphmem_dagster
telemetry:
  enabled: false
"""

# Runs, event logs and schedules in PostgreSQL, as in the project's dagster.postgres.yaml.
_POSTGRES_STORAGE_YAML = """\
run_storage:
  module: dagster_postgres.run_storage
  class: PostgresRunStorage
  config:
    postgres_db: &postgres_db
      hostname:
        env: DAGSTER_PG_HOST
      port:
        env: DAGSTER_PG_PORT
      username:
        env: DAGSTER_PG_USER
      password:
        env: DAGSTER_PG_PASSWORD
      db_name:
        env: DAGSTER_PG_DB
      scheme: postgresql+psycopg2
event_log_storage:
  module: dagster_postgres.event_log
  class: PostgresEventLogStorage
  config:
    postgres_db: *postgres_db
schedule_storage:
  module: dagster_postgres.schedule_storage
  class: PostgresScheduleStorage
  config:
    postgres_db: *postgres_db
"""

INSTANCE_KIND_VARIABLE = "GRAPHMEM_DAGSTER_INSTANCE"

# Instance kind: (project file copied into a new DAGSTER_HOME, text written when that file is absent).
INSTANCE_KINDS = {
    "sqlite": ("dagster.yaml", _DIRECT_COORDINATOR_YAML + _COMMON_INSTANCE_YAML),
    "postgres": ("dagster.postgres.yaml", _POSTGRES_STORAGE_YAML + _QUEUED_COORDINATOR_YAML + _COMMON_INSTANCE_YAML),
}

_POLL_SECONDS = 1.0


def requested_instance_kind() -> str:
    """Return the Dagster instance kind that GRAPHMEM_DAGSTER_INSTANCE selects: `sqlite` (default) or `postgres`."""
    kind = os.environ.get(INSTANCE_KIND_VARIABLE, "").strip() or "sqlite"
    if kind not in INSTANCE_KINDS:
        raise ConfigurationError(f"{INSTANCE_KIND_VARIABLE}={kind!r} is not a Dagster instance kind: use one of {', '.join(INSTANCE_KINDS)}")
    return kind


def _load_instance_config(instance_file: Path) -> dict:
    import yaml

    try:
        config = yaml.safe_load(instance_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{instance_file} is not valid YAML: {error}: fix or delete it") from error
    return config if isinstance(config, dict) else {}


def instance_kind_of(config: dict) -> str:
    """Return `postgres` when an instance configuration keeps any storage in PostgreSQL, else `sqlite`."""
    storage = config.get("storage")
    if isinstance(storage, dict) and "postgres" in storage:
        return "postgres"
    for section in ("run_storage", "event_log_storage", "schedule_storage"):
        entry = config.get(section)
        if isinstance(entry, dict) and str(entry.get("module", "")).startswith("dagster_postgres"):
            return "postgres"
    return "sqlite"


def _environment_variables_in(config: object) -> set[str]:
    """Return the names that Dagster's `env:` syntax reads anywhere in `config`."""
    if isinstance(config, dict):
        names = {config["env"]} if isinstance(config.get("env"), str) else set()
        for value in config.values():
            names |= _environment_variables_in(value)
        return names
    if isinstance(config, list):
        return set().union(*(_environment_variables_in(item) for item in config))
    return set()


def ensure_dagster_home() -> Path:
    """Return DAGSTER_HOME, creating `.dagster_home/` in the working directory when it is unset.

    A new home gets the instance file of the kind that GRAPHMEM_DAGSTER_INSTANCE selects, copied
    from the working directory when it is there and otherwise written with the same settings. An
    existing `dagster.yaml` is kept, with a warning when it is of the other kind. Raises
    `ConfigurationError` when a variable that the instance file reads with `env:` is unset.
    """
    kind = requested_instance_kind()
    configured = os.environ.get("DAGSTER_HOME")
    home = Path(configured) if configured else Path.cwd() / ".dagster_home"
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)

    instance_file = home / "dagster.yaml"
    project_name, fallback_text = INSTANCE_KINDS[kind]
    if not instance_file.exists():
        project_file = Path.cwd() / project_name
        if project_file.is_file():
            shutil.copyfile(project_file, instance_file)
            logger.info("created %s from %s", instance_file, project_file)
        else:
            instance_file.write_text(fallback_text, encoding="utf-8")
            logger.info("created %s with a %s instance", instance_file, kind)

    config = _load_instance_config(instance_file)
    existing_kind = instance_kind_of(config)
    if existing_kind != kind:
        logger.warning(
            "using the existing %s instance %s although %s selects %s: delete that file to create a %s instance from %s",
            existing_kind, instance_file, INSTANCE_KIND_VARIABLE, kind, kind, project_name,
        )

    missing = sorted(name for name in _environment_variables_in(config) if not os.environ.get(name))
    if missing:
        raise ConfigurationError(
            f"missing environment variables {', '.join(missing)}, which {instance_file} reads with `env:`: set them before running Dagster"
        )

    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _launch(batch_id: str, settings: Settings, run_id: str, log_path: Path) -> subprocess.Popen:
    """Start `dagster job launch` for `batch_id`; it submits the run to the instance and exits when the run ends.

    The launcher runs in its own session with output in `log_path`, so with --no-wait the run goes on
    after this command returns.
    """
    run_config = {"resources": {"graph_store": {"config": {"home": str(settings.home.resolve())}}}}
    command = [
        sys.executable,
        "-m",
        "dagster",
        "job",
        "launch",
        "-m",
        CODE_MODULE,
        "-j",
        JOB_NAME,
        "--run-id",
        run_id,
        "--tags",
        json.dumps({"dagster/partition": batch_id}),
        "--config-json",
        json.dumps(run_config),
    ]
    environment = dict(os.environ, GRAPHMEM_HOME=str(settings.home.resolve()))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _launch_failure(run_id: str, returncode: int, log_path: Path) -> GraphmemError:
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:] if log_path.exists() else ""
    return GraphmemError(f"`dagster job launch` exited with code {returncode} before run {run_id} was created. Its output:\n{tail}")


def _wait_until_submitted(instance, run_id: str, launcher: subprocess.Popen, log_path: Path, timeout: float = 300.0) -> None:
    """Wait until the instance has a record of the run, raising if the launcher exits without one."""
    started = time.monotonic()
    while instance.get_run_by_id(run_id) is None:
        returncode = launcher.poll()
        if returncode is not None and instance.get_run_by_id(run_id) is None:
            raise _launch_failure(run_id, returncode, log_path)
        if time.monotonic() - started > timeout:
            raise GraphmemError(f"run {run_id} was not submitted within {timeout:.0f} s: see {log_path}")
        time.sleep(0.2)


def _wait_for_run(instance, run_id: str, timeout: float) -> str:
    """Print each step as it starts and ends, and return the run's final status name."""
    from dagster import DagsterEventType, DagsterRunStatus

    printed = 0
    started = time.monotonic()
    interesting = {
        DagsterEventType.STEP_START: "started",
        DagsterEventType.STEP_SUCCESS: "succeeded",
        DagsterEventType.STEP_FAILURE: "FAILED",
        DagsterEventType.ASSET_CHECK_EVALUATION: "check",
    }
    while True:
        run = instance.get_run_by_id(run_id)
        records = instance.all_logs(run_id)
        for record in records[printed:]:
            event = record.dagster_event
            elapsed = time.monotonic() - started
            if event is None and record.level >= logging.INFO and record.user_message:
                _print(f"[{elapsed:6.1f}s]   {record.user_message}")
                continue
            if event is None or event.event_type not in interesting:
                continue
            if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                evaluation = event.event_specific_data
                outcome = "passed" if evaluation.passed else "FAILED"
                _print(f"[{elapsed:6.1f}s] check {evaluation.check_name} {outcome}")
            else:
                _print(f"[{elapsed:6.1f}s] {event.step_key} {interesting[event.event_type]}")
            if event.event_type == DagsterEventType.STEP_FAILURE:
                _print(f"          {_root_cause(event.event_specific_data.error)}")
        printed = len(records)

        if run.is_finished:
            return run.status.value
        if time.monotonic() - started > timeout:
            raise GraphmemError(f"run {run_id} did not finish within {timeout:.0f} s: follow it in the Dagster UI or raise --timeout")
        if run.status == DagsterRunStatus.QUEUED and time.monotonic() - started > 120:
            raise GraphmemError(
                f"run {run_id} is still queued after 120 s: start `dagster-daemon run`, or set the DefaultRunCoordinator "
                f"in {os.environ['DAGSTER_HOME']}/dagster.yaml"
            )
        time.sleep(_POLL_SECONDS)


def _root_cause(error) -> str:
    """Return the message of the innermost cause of a Dagster error, which names what actually failed."""
    if error is None:
        return "no error details recorded"
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def command_ingest(arguments: argparse.Namespace) -> int:
    """Register a batch, launch the ingest job for it, and wait for the run unless --no-wait."""
    from dagster import DagsterInstance

    settings = Settings.from_env()
    tenant = arguments.tenant or settings.tenant
    memory = arguments.memory or settings.memory
    validate_namespace(tenant, memory)
    paths = [Path(p) for p in arguments.paths]

    _print(f"hashing input files under {', '.join(str(p) for p in paths)}")
    manifest = register_batch(paths, tenant, memory, settings.batches_path)
    _print(f"batch {manifest.batch_id}: {len(manifest.files)} files for {tenant}/{memory}")

    ensure_dagster_home()
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(PARTITIONS_NAME, [manifest.batch_id])

    run_id = str(uuid.uuid4())
    log_path = Path(os.environ["DAGSTER_HOME"]) / "launches" / f"{run_id}.log"
    launcher = _launch(manifest.batch_id, settings, run_id, log_path)
    _wait_until_submitted(instance, run_id, launcher, log_path)
    _print(f"launched run {run_id} (launcher output: {log_path})")
    if arguments.no_wait:
        print(json.dumps({"batch_id": manifest.batch_id, "run_id": run_id}))
        return 0

    status = _wait_for_run(instance, run_id, arguments.timeout)
    launcher.wait()
    _print_rejections(settings, tenant, memory, manifest.batch_id)
    print(json.dumps({"batch_id": manifest.batch_id, "run_id": run_id, "status": status}))
    if status != "SUCCESS":
        _print(f"run {run_id} ended with status {status}: see `dagster` logs in {os.environ['DAGSTER_HOME']} or the UI")
        return 1
    return 0


def _print_rejections(settings: Settings, tenant: str, memory: str, batch_id: str) -> None:
    """Print every input of the batch that was rejected, with its reason."""
    from graphmem_core.stores import open_store

    if settings.store == "libsql" and not settings.database_path.is_file():
        return
    store = open_store(settings)
    try:
        rejected = store.get_rejections(tenant, memory, batch_id)
    finally:
        store.close()
    if rejected:
        _print(f"{len(rejected)} inputs of {batch_id} were rejected:")
    for rejection in rejected:
        _print(f"  {rejection.source}: {rejection.reason}")


def command_query(arguments: argparse.Namespace) -> int:
    """Print the chunks that best match the text and the graph around them."""
    from graphmem_core.cache import open_cache
    from graphmem_core.embeddings import Embedder
    from graphmem_core.query import QueryEngine

    with _existing_store(arguments) as (settings, tenant, memory, store):
        embedder = Embedder(settings.embedding_model, settings.embedding_device, settings.embedding_batch_size)
        # Load the model before the query so that its timings show the query's own cost.
        embedder.model
        cache = open_cache(settings)
        try:
            engine = QueryEngine(store, embedder, cache)
            result = engine.query(tenant, memory, arguments.text, top_k=arguments.top_k, hops=arguments.hops, mode=arguments.mode)
        finally:
            cache.close()

    if arguments.json:
        print(result.model_dump_json(indent=2))
        return 0
    _print_query_result(result)
    return 0


def _print_query_result(result) -> None:
    names = {entity.id: entity.name for entity in result.entities}
    print(f"Query: {result.query} (mode {result.mode.value})\n")
    print("Top chunks:")
    for rank, hit in enumerate(result.chunks, start=1):
        title = hit.document_title or hit.chunk.document_id
        text = " ".join(hit.chunk.text.split())
        print(f"  {rank}. [{hit.score:.3f}] {title}: {text[:240]}{'…' if len(text) > 240 else ''}")
    if not result.chunks:
        print("  (none: ingest documents first)")

    print("\nEntities:")
    for entity in result.entities[:15]:
        print(f"  - {entity.name} ({entity.type.value}, {entity.mention_count} mentions)")
    print("\nRelations:")
    for relation in result.relations[:15]:
        source = names.get(relation.source_id, relation.source_id)
        target = names.get(relation.target_id, relation.target_id)
        print(f"  - {source} -[{relation.type}]-> {target} (weight {relation.weight:g})")
    print("\nCommunities:")
    for community in result.communities[:5]:
        print(f"  - {community.title} ({len(community.member_ids)} entities, level {community.level})")
        if community.summary.representative_sentence:
            print(f"    \"{community.summary.representative_sentence[:200]}\"")
    timings = ", ".join(f"{name} {value:.0f} ms" for name, value in result.timings_ms.items())
    print(f"\nTimings: {timings}{' (cached answer)' if result.cached else ''}")


@contextmanager
def _existing_store(arguments: argparse.Namespace) -> Iterator[tuple[Settings, str, str, "GraphStore"]]:
    """Open the configured graph store with the namespace the arguments select, raising when a libSQL file is missing."""
    from graphmem_core.stores import open_store

    settings = Settings.from_env()
    tenant = arguments.tenant or settings.tenant
    memory = arguments.memory or settings.memory
    validate_namespace(tenant, memory)
    if settings.store == "libsql" and not settings.database_path.is_file():
        raise GraphmemError(
            f"graph store {settings.database_path} not found: run `graphmem ingest PATH` first or set GRAPHMEM_HOME to the folder that contains graph.db"
        )

    store = open_store(settings)
    try:
        yield settings, tenant, memory, store
    finally:
        store.close()


def command_stats(arguments: argparse.Namespace) -> int:
    """Print the counts of stored objects in the namespace."""
    with _existing_store(arguments) as (settings, tenant, memory, store):
        counts = store.counts(tenant, memory)
        version = store.graph_version(tenant, memory)

    stats: dict[str, object] = {"tenant": tenant, "memory": memory, "store": settings.store}
    if settings.store == "neo4j":
        stats.update({"neo4j_uri": settings.neo4j_uri, "neo4j_database": settings.neo4j_database})
    else:
        stats.update({"database": str(settings.database_path.resolve()), "database_bytes": settings.database_path.stat().st_size})
    stats.update({"graph_version": version, **counts})
    if arguments.json:
        print(json.dumps(stats, indent=2))
    else:
        width = max(len(key) for key in stats)
        for key, value in stats.items():
            print(f"{key.ljust(width)}  {value}")
    return 0


def command_backup(arguments: argparse.Namespace) -> int:
    """Copy the namespace from the configured store into the backup target and print the backup's counts."""
    from graphmem_core.backup import backup_namespace, display_target

    with _existing_store(arguments) as (settings, tenant, memory, store):
        if arguments.target:
            settings = settings.model_copy(update={"backup_url": arguments.target})
        target = display_target(settings.backup_target)
        _print(f"backing up {tenant}/{memory} to {target}")
        counts = backup_namespace(store, settings, tenant, memory)

    print(json.dumps({"tenant": tenant, "memory": memory, "target": target, **counts}, indent=2))
    return 0


def command_restore(arguments: argparse.Namespace) -> int:
    """Copy the namespace from a backup into the configured store and print the store's counts."""
    from graphmem_core.backup import display_target, is_remote_target, open_backup_store, restore_namespace
    from graphmem_core.stores import open_store

    settings = Settings.from_env()
    tenant = arguments.tenant or settings.tenant
    memory = arguments.memory or settings.memory
    validate_namespace(tenant, memory)

    source = arguments.backup
    if not is_remote_target(source):
        if not Path(source).is_file():
            raise GraphmemError(f"backup file {source} not found: pass the path of a file written by `graphmem backup`")
        if settings.store == "libsql" and Path(source).resolve() == settings.database_path.resolve():
            raise GraphmemError(f"{source} is the configured graph store itself: restore into another GRAPHMEM_HOME")

    _print(f"restoring {tenant}/{memory} from {display_target(source)} into the {settings.store} store")
    backup = open_backup_store(source, replica_folder=settings.home / "backups", auth_token=settings.backup_auth_token)
    try:
        store = open_store(settings)
        try:
            counts = restore_namespace(backup, store, tenant, memory, replace=arguments.replace)
        finally:
            store.close()
    finally:
        backup.close()

    print(json.dumps({"tenant": tenant, "memory": memory, "store": settings.store, **counts}, indent=2))
    return 0


def command_serve(arguments: argparse.Namespace) -> int:
    """Run the HTTP query service with uvicorn until interrupted."""
    import uvicorn

    from graphmem_service import create_app

    # Settings and API keys are checked here, so a configuration error ends the command with its message.
    app = create_app(Settings.from_env())
    # The service logs its start, its stop and store failures at INFO and above, even without --verbose.
    logging.getLogger("graphmem_service").setLevel(logging.INFO)
    _print(f"starting the query service on http://{arguments.host}:{arguments.port} (stop it with Ctrl-C)")
    uvicorn.run(app, host=arguments.host, port=arguments.port, log_level="info" if arguments.verbose else "warning")
    return 0


# Merge records and their undo: `graphmem merges`, `graphmem unmerge` and `graphmem allow-merge`.


def command_merges(arguments: argparse.Namespace) -> int:
    """Print the merge records of the namespace, or of one entity, and the exclusions that keep names apart."""
    with _existing_store(arguments) as (_, tenant, memory, store):
        entities = {entity.id: entity for entity in store.get_entities(tenant, memory)}
        entity_ids = None
        if arguments.entity:
            matches = store.find_entities(tenant, memory, arguments.entity)
            exact = [entity for entity in matches if arguments.entity.casefold() in {n.casefold() for n in (entity.name, *entity.aliases)}]
            if not exact:
                raise GraphmemError(f"entity {arguments.entity!r} not found in {tenant}/{memory}: check the name with `graphmem query`")
            entity_ids = sorted(entity.id for entity in exact)
        records = store.get_merge_records(tenant, memory, entity_ids)
        exclusions = store.get_merge_exclusions(tenant, memory)

    if arguments.json:
        print(
            json.dumps(
                {
                    "merges": [record.model_dump(mode="json") for record in records],
                    "exclusions": [exclusion.model_dump(mode="json") for exclusion in exclusions],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0

    for record in records:
        entity = entities.get(record.entity_id)
        target = entity.name if entity is not None else record.entity_id
        features = ", ".join(f"{name} {value:g}" for name, value in sorted(record.features.items()))
        print(
            f"{record.first} ({record.first_type.value}) + {record.second} ({record.second_type.value}) -> {target}: "
            f"{record.rule}, score {record.score:g}{f' ({features})' if features else ''}"
        )
    print(f"{len(records)} merges")
    for exclusion in exclusions:
        print(f"kept apart: {exclusion.first} / {exclusion.second}{f' ({exclusion.note})' if exclusion.note else ''}")
    return 0


def command_unmerge(arguments: argparse.Namespace) -> int:
    """Store an exclusion that keeps two names in different entities from the next resolution run on."""
    from graphmem_core.pipeline import unmerge

    with _existing_store(arguments) as (_, tenant, memory, store):
        exclusion = unmerge(store, tenant, memory, arguments.first, arguments.second, note=arguments.note)
    print(f"{exclusion.first!r} and {exclusion.second!r} stay apart from the next ingestion run on, which resolves the whole graph again")
    return 0


def command_allow_merge(arguments: argparse.Namespace) -> int:
    """Delete the exclusion of two names, so that the next resolution run may merge them again."""
    from graphmem_core.pipeline import allow_merge

    with _existing_store(arguments) as (_, tenant, memory, store):
        deleted = allow_merge(store, tenant, memory, arguments.first, arguments.second)
    if not deleted:
        print(f"{arguments.first!r} and {arguments.second!r} were not excluded: nothing changed")
        return 0
    print(f"{arguments.first!r} and {arguments.second!r} may merge again from the next ingestion run on")
    return 0


def add_merge_commands(subcommands: "argparse._SubParsersAction", add_namespace) -> None:
    """Add the `merges`, `unmerge` and `allow-merge` commands to the `graphmem` parser."""
    merges = subcommands.add_parser("merges", help="explain resolution: list the merge records and the names kept apart")
    merges.add_argument("--entity", help="only the merges behind the entity with this name or alias (case-insensitive)")
    merges.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_namespace(merges)
    merges.set_defaults(handler=command_merges)

    unmerge = subcommands.add_parser("unmerge", help="keep two names in different entities from the next resolution run on")
    unmerge.add_argument("first", help="a name of the first entity, any spelling that folds to it")
    unmerge.add_argument("second", help="a name of the second entity")
    unmerge.add_argument("--note", default="", help="why the names are kept apart, stored with the exclusion")
    add_namespace(unmerge)
    unmerge.set_defaults(handler=command_unmerge)

    allow = subcommands.add_parser("allow-merge", help="undo `graphmem unmerge`: let two names merge again")
    allow.add_argument("first", help="the first name of the exclusion")
    allow.add_argument("second", help="the second name of the exclusion")
    add_namespace(allow)
    allow.set_defaults(handler=command_allow_merge)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `graphmem` command."""
    parser = argparse.ArgumentParser(prog="graphmem", description="Knowledge-graph memory for AI agents, built by Dagster assets.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log library messages at INFO level")
    subcommands = parser.add_subparsers(dest="command", required=True)

    def add_namespace(subparser: argparse.ArgumentParser) -> None:
        subparser.add_argument("--tenant", help="tenant to use (default: GRAPHMEM_TENANT or 'default')")
        subparser.add_argument("--memory", help="memory to use (default: GRAPHMEM_MEMORY or 'default')")

    ingest = subcommands.add_parser("ingest", help="ingest files or folders as one batch through the Dagster instance")
    ingest.add_argument("paths", nargs="+", help="files or folders of .txt, .md, .jsonl and .zip files")
    ingest.add_argument("--no-wait", action="store_true", help="return as soon as the run is launched")
    ingest.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the run (default 3600)")
    add_namespace(ingest)
    ingest.set_defaults(handler=command_ingest)

    query = subcommands.add_parser("query", help="search the graph memory")
    query.add_argument("text", help="the question or text to search for")
    query.add_argument("--top-k", type=int, default=5, help="chunks to return (1 to 100, default 5)")
    query.add_argument("--hops", type=int, default=1, help="relation hops around the matched entities (0 to 3, default 1)")
    query.add_argument(
        "--mode",
        default="hybrid",
        help="retrieval mode: naive (vector search), local (entity graph), global (community summaries) or hybrid (default)",
    )
    query.add_argument("--json", action="store_true", help="print the full result as JSON")
    add_namespace(query)
    query.set_defaults(handler=command_query)

    stats = subcommands.add_parser("stats", help="print counts of stored documents, chunks, entities and more")
    stats.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_namespace(stats)
    stats.set_defaults(handler=command_stats)

    backup = subcommands.add_parser("backup", help="copy the namespace from the graph store into a libSQL backup")
    backup.add_argument(
        "--target",
        help="backup file path, or libsql:// or https:// URL with GRAPHMEM_BACKUP_AUTH_TOKEN "
        "(default: GRAPHMEM_BACKUP_URL, else GRAPHMEM_HOME/backups/graph.db)",
    )
    add_namespace(backup)
    backup.set_defaults(handler=command_backup)

    restore = subcommands.add_parser("restore", help="copy the namespace from a libSQL backup into the graph store (GRAPHMEM_STORE)")
    restore.add_argument("backup", help="backup file path, or libsql:// or https:// URL with GRAPHMEM_BACKUP_AUTH_TOKEN")
    restore.add_argument("--replace", action="store_true", help="delete the namespace in the graph store first when it is not empty")
    add_namespace(restore)
    restore.set_defaults(handler=command_restore)

    serve = subcommands.add_parser("serve", help="run the HTTP query service (settings and API keys from GRAPHMEM_* variables)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default 8000)")
    serve.set_defaults(handler=command_serve)

    add_streaming_commands(subcommands, add_namespace)
    add_merge_commands(subcommands, add_namespace)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `graphmem` command and return its exit code."""
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if arguments.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not arguments.verbose:
        # Model loading draws a progress bar per call, which buries the command's own output.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        return arguments.handler(arguments)
    except GraphmemError as error:
        _print(f"graphmem: error: {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
