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
from graphmem_core.errors import GraphmemError
from graphmem_core.settings import Settings, validate_namespace

if TYPE_CHECKING:
    from graphmem_core.stores.base import GraphStore

logger = logging.getLogger("graphmem")

JOB_NAME = "ingest"
CODE_MODULE = "graphmem_dagster.definitions"
PARTITIONS_NAME = "batches"

_DEFAULT_INSTANCE_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
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

_POLL_SECONDS = 1.0


def ensure_dagster_home() -> Path:
    """Return DAGSTER_HOME, creating `.dagster_home/` in the working directory when it is unset.

    A new home gets the project's `dagster.yaml` from the working directory when there is one, and
    otherwise the same settings: launch runs at once and send no telemetry.
    """
    configured = os.environ.get("DAGSTER_HOME")
    home = Path(configured) if configured else Path.cwd() / ".dagster_home"
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)

    instance_file = home / "dagster.yaml"
    if not instance_file.exists():
        project_file = Path.cwd() / "dagster.yaml"
        if project_file.is_file():
            shutil.copyfile(project_file, instance_file)
        else:
            instance_file.write_text(_DEFAULT_INSTANCE_YAML, encoding="utf-8")
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
    from graphmem_core.embeddings import Embedder
    from graphmem_core.query import QueryEngine

    with _existing_store(arguments) as (settings, tenant, memory, store):
        embedder = Embedder(settings.embedding_model, settings.embedding_device, settings.embedding_batch_size)
        # Load the model before the query so that its timings show the query's own cost.
        embedder.model
        engine = QueryEngine(store, embedder)
        result = engine.query(tenant, memory, arguments.text, top_k=arguments.top_k, hops=arguments.hops)

    if arguments.json:
        print(result.model_dump_json(indent=2))
        return 0
    _print_query_result(result)
    return 0


def _print_query_result(result) -> None:
    names = {entity.id: entity.name for entity in result.entities}
    print(f"Query: {result.query}\n")
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
    print(f"\nTimings: {timings}")


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

    stats = {
        "tenant": tenant,
        "memory": memory,
        "database": str(settings.database_path.resolve()),
        "database_bytes": settings.database_path.stat().st_size,
        "graph_version": version,
        **counts,
    }
    if arguments.json:
        print(json.dumps(stats, indent=2))
    else:
        width = max(len(key) for key in stats)
        for key, value in stats.items():
            print(f"{key.ljust(width)}  {value}")
    return 0


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
    query.add_argument("--json", action="store_true", help="print the full result as JSON")
    add_namespace(query)
    query.set_defaults(handler=command_query)

    stats = subcommands.add_parser("stats", help="print counts of stored documents, chunks, entities and more")
    stats.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_namespace(stats)
    stats.set_defaults(handler=command_stats)
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
