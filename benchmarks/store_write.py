"""Measure how fast the graph stores write a resolved graph built from the podcast transcripts.

Usage: .venv/bin/python benchmarks/store_write.py [--limit N] [--stores libsql,neo4j]
       [--batch-sizes 500,1000,2000,5000,10000] [--repeat 3] [--neo4j-uri URI] [--neo4j-pid PID]
       [--skip-communities] [--json]

The graph is built once per run: the transcripts are chunked and extracted as in `extract.py`, then
resolved with `resolve_entities(..., embed=None)`. Resolution skips the embedding step, so names
merge by the alias rules only and the run measures writes, not the encoder. The communities come
from `detect_communities` on that graph.

Each measurement stores the chunks untimed, as the pipeline does before resolution, then times
`replace_graph`, the write path of the pipeline (entities, relations and mention links), into a
namespace without a graph. Then it times a second `replace_graph` of the same graph,
which the fingerprint check turns into a no-op, and `replace_communities`. libSQL gets a fresh file
per repeat. On Neo4j the namespace of the tenant `bench-store-write` is emptied first, and
`delete_namespace` after each write is timed as well. Nothing outside that tenant is written. Each
repeat visits every batch size in turn.
The Neo4j password comes from GRAPHMEM_NEO4J_PASSWORD and the user from GRAPHMEM_NEO4J_USER.

Wall-clock times depend on whatever else runs on the machine, so the CPU time of this process is
reported beside them. With `--neo4j-pid`, so is that of a Neo4j server on the same Linux host,
which includes the work it does for any other client at the time.
"""

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from extract import DEFAULT_CORPUS, load_documents, make_chunks
from machine import cpu_model

from graphmem_core.communities import detect_communities
from graphmem_core.errors import StoreError
from graphmem_core.extraction import get_extractor
from graphmem_core.models import Chunk, Community, ResolvedGraph  # noqa: E402
from graphmem_core.resolution import resolve_entities
from graphmem_core.stores import libsql_store
from graphmem_core.stores.base import GraphStore
from graphmem_core.stores.libsql_store import LibsqlGraphStore

logger = logging.getLogger(__name__)

TENANT = "bench-store-write"
MEMORY = "default"

DEFAULT_BATCH_SIZES = (500, 1000, 2000, 5000, 10000)

# The project's throughput goal for entities plus relations written per second.
GOAL_ROWS_PER_SECOND = 20_000


@dataclass
class BuiltGraph:
    """The graph under test and what it took to build it."""

    documents: int
    chunks: int
    graph: ResolvedGraph
    communities: list[Community]
    mention_links: int
    build_seconds: dict[str, float]
    stored_chunks: list[Chunk]


@dataclass
class Measurement:
    """Timings of one store at one batch size, each list holding one value per repeat."""

    store: str
    batch_size: int
    batch_size_note: str
    entities: int
    relations: int
    mention_links: int
    communities: int
    write_seconds: list[float] = field(default_factory=list)
    write_cpu_seconds: list[float] = field(default_factory=list)
    server_cpu_seconds: list[float] = field(default_factory=list)
    rewrite_seconds: list[float] = field(default_factory=list)
    rewrite_changed: list[bool] = field(default_factory=list)
    communities_seconds: list[float] = field(default_factory=list)
    delete_seconds: list[float] = field(default_factory=list)
    step_seconds: list[dict[str, float]] = field(default_factory=list)


# The Neo4j write steps that store entities and relations, as the store logs them; the others store
# mention links and find their chunks.
ENTITY_RELATION_STEPS = ("updating entities", "storing entities", "storing placeholder entities", "storing relations")


class StepRecorder(logging.Handler):
    """Collects the per-step durations that the Neo4j store logs at DEBUG level."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        step = getattr(record, "step", None)
        if step is not None:
            self.seconds[step] = self.seconds.get(step, 0.0) + float(getattr(record, "seconds"))


def parse_arguments() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="zip archive or folder of .txt transcripts (default: the podcast archive)")
    parser.add_argument("--limit", type=int, default=None, help="read at most this many documents (default: all)")
    parser.add_argument("--stores", default="libsql,neo4j", help="comma-separated stores to measure: libsql, neo4j (default: both)")
    parser.add_argument(
        "--batch-sizes",
        default=",".join(str(size) for size in DEFAULT_BATCH_SIZES),
        help="comma-separated Neo4j batch sizes, in rows per transaction (default: 500,1000,2000,5000,10000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="measurements per store and batch size; the fastest is reported (default: 3)")
    parser.add_argument(
        "--neo4j-uri",
        default=os.environ.get("GRAPHMEM_NEO4J_URI", "bolt://127.0.0.1:7687"),
        help="Bolt address of the Neo4j server (default: GRAPHMEM_NEO4J_URI or bolt://127.0.0.1:7687)",
    )
    parser.add_argument("--neo4j-database", default=os.environ.get("GRAPHMEM_NEO4J_DATABASE", "neo4j"), help="Neo4j database (default: neo4j)")
    parser.add_argument(
        "--neo4j-pid",
        type=int,
        default=None,
        help="process id of a Neo4j server on this Linux host; its CPU seconds during each first write are reported",
    )
    parser.add_argument("--skip-communities", action="store_true", help="do not detect or write communities")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object instead of a table")
    arguments = parser.parse_args()

    arguments.stores = [name.strip() for name in arguments.stores.split(",") if name.strip()]
    unknown = sorted(set(arguments.stores) - {"libsql", "neo4j"})
    if unknown:
        parser.error(f"unknown store {', '.join(unknown)} in --stores: use libsql, neo4j or both")
    try:
        arguments.batch_sizes = list(dict.fromkeys(int(size) for size in arguments.batch_sizes.split(",") if size.strip()))
    except ValueError:
        parser.error(f"--batch-sizes {arguments.batch_sizes!r} is invalid: pass whole numbers separated by commas")
    if not arguments.batch_sizes or min(arguments.batch_sizes) < 1:
        parser.error(f"--batch-sizes {arguments.batch_sizes} is invalid: pass one or more sizes of at least 1")
    if arguments.limit is not None and arguments.limit < 1:
        parser.error(f"--limit {arguments.limit} is invalid: pass 1 or more, or leave it out to read every document")
    if arguments.repeat < 1:
        parser.error(f"--repeat {arguments.repeat} is invalid: pass 1 or more")
    if "neo4j" in arguments.stores and not os.environ.get("GRAPHMEM_NEO4J_PASSWORD"):
        parser.error("GRAPHMEM_NEO4J_PASSWORD is not set: export the Neo4j password or pass --stores libsql")
    if arguments.neo4j_pid is not None and not Path(f"/proc/{arguments.neo4j_pid}/stat").exists():
        parser.error(f"--neo4j-pid {arguments.neo4j_pid} is not a running process on this Linux host: pass the server's process id or leave it out")
    return arguments


def build_graph(corpus: Path, limit: int | None, with_communities: bool) -> BuiltGraph:
    """Chunk, extract and resolve the corpus, then detect communities, timing each step."""
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    documents = load_documents(corpus, limit)
    chunks, _ = make_chunks(documents, None)
    seconds["chunking"] = time.perf_counter() - started
    if not chunks:
        raise SystemExit(f"corpus {corpus} produced no chunks: pass a non-empty archive or folder")

    started = time.perf_counter()
    results = get_extractor("fast").extract(chunks)
    seconds["extraction"] = time.perf_counter() - started

    started = time.perf_counter()
    graph = resolve_entities(TENANT, MEMORY, results, embed=None)
    seconds["resolution"] = time.perf_counter() - started

    communities: list[Community] = []
    if with_communities:
        started = time.perf_counter()
        chunk_texts = {chunk.id: chunk.text for chunk in chunks}
        communities = detect_communities(TENANT, MEMORY, graph.entities, graph.relations, chunk_texts)
        seconds["communities"] = time.perf_counter() - started

    return BuiltGraph(
        documents=len(documents),
        chunks=len(chunks),
        graph=graph,
        communities=communities,
        # Both stores drop duplicate links, so the distinct ones are what gets written.
        mention_links=len(set(graph.mention_links)),
        build_seconds={name: round(value, 2) for name, value in seconds.items()},
        stored_chunks=chunks,
    )


def new_measurement(store: str, batch_size: int, note: str, built: BuiltGraph) -> Measurement:
    """Start an empty measurement for one store and batch size."""
    return Measurement(
        store=store,
        batch_size=batch_size,
        batch_size_note=note,
        entities=len(built.graph.entities),
        relations=len(built.graph.relations),
        mention_links=built.mention_links,
        communities=len(built.communities),
    )


def process_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU seconds that process `pid` has used, from /proc/PID/stat."""
    # The command name in field 2 may contain spaces, so the fields are counted after its closing bracket.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / os.sysconf("SC_CLK_TCK")


def time_writes(store: GraphStore, built: BuiltGraph, measurement: Measurement, server_pid: int | None = None) -> None:
    """Time one first write, one rewrite of the same graph and one community write, appending to `measurement`."""
    # The pipeline stores chunks before it resolves, so mention links find their chunks in place.
    store.upsert_chunks(TENANT, MEMORY, built.stored_chunks)

    server_started = process_cpu_seconds(server_pid) if server_pid is not None else 0.0
    recorder = StepRecorder()
    store_logger = logging.getLogger("graphmem_core.stores.neo4j_store")
    previous_level = store_logger.level
    store_logger.addHandler(recorder)
    store_logger.setLevel(logging.DEBUG)
    try:
        started = time.perf_counter()
        cpu_started = time.process_time()
        changed = store.replace_graph(TENANT, MEMORY, built.graph)
        measurement.write_cpu_seconds.append(time.process_time() - cpu_started)
        measurement.write_seconds.append(time.perf_counter() - started)
    finally:
        store_logger.removeHandler(recorder)
        store_logger.setLevel(previous_level)
    measurement.step_seconds.append(recorder.seconds)
    if server_pid is not None:
        measurement.server_cpu_seconds.append(process_cpu_seconds(server_pid) - server_started)
    if not changed:
        raise SystemExit(
            f"{measurement.store} skipped the first write of the graph as unchanged, so {TENANT}/{MEMORY} was not empty: "
            "delete that namespace and run again"
        )

    started = time.perf_counter()
    measurement.rewrite_changed.append(store.replace_graph(TENANT, MEMORY, built.graph))
    measurement.rewrite_seconds.append(time.perf_counter() - started)

    if built.communities:
        started = time.perf_counter()
        store.replace_communities(TENANT, MEMORY, built.communities)
        measurement.communities_seconds.append(time.perf_counter() - started)


def measure_libsql(built: BuiltGraph, repeat: int) -> Measurement:
    """Time the writes into a fresh libSQL file per repeat."""
    # NOTE: `_batches` in libsql_store binds WRITE_BATCH_ROWS as a default argument when the module
    # loads, so setting the module attribute here would change nothing. Only the shipped size is measured.
    note = "WRITE_BATCH_ROWS, rows per executemany call; the whole graph is one transaction"
    measurement = new_measurement("libsql", libsql_store.WRITE_BATCH_ROWS, note, built)
    for attempt in range(repeat):
        with tempfile.TemporaryDirectory(prefix="graphmem-store-write-") as folder:
            store = LibsqlGraphStore(Path(folder) / "graph.db")
            try:
                time_writes(store, built, measurement)
            finally:
                store.close()
        logger.info("libsql repeat %d: write %.2f s", attempt + 1, measurement.write_seconds[-1])
    return measurement


def open_neo4j(uri: str, database: str, batch_size: int) -> GraphStore:
    """Open the Neo4j store with the credentials from the environment."""
    from graphmem_core.stores.neo4j_store import Neo4jGraphStore

    password = os.environ["GRAPHMEM_NEO4J_PASSWORD"]
    user = os.environ.get("GRAPHMEM_NEO4J_USER", "neo4j")
    return Neo4jGraphStore(uri, user=user, password=password, database=database, batch_size=batch_size)


def measure_neo4j(
    built: BuiltGraph, uri: str, database: str, batch_sizes: Sequence[int], repeat: int, server_pid: int | None
) -> list[Measurement]:
    """Time the writes into an empty benchmark namespace on Neo4j and the delete after them, per batch size and repeat."""
    note = "batch_size, rows per UNWIND statement and transaction"
    measurements = {size: new_measurement("neo4j", size, note, built) for size in batch_sizes}
    stores = {}
    try:
        for size in batch_sizes:
            stores[size] = open_neo4j(uri, database, size)
        # A run stopped half-way may have left its graph behind.
        stores[batch_sizes[0]].delete_namespace(TENANT, MEMORY)

        # Each repeat visits every batch size, so a change in machine load affects them alike.
        for attempt in range(repeat):
            for size in batch_sizes:
                measurement = measurements[size]
                time_writes(stores[size], built, measurement, server_pid)
                logger.info("neo4j batch %d repeat %d: write %.2f s", size, attempt + 1, measurement.write_seconds[-1])

                started = time.perf_counter()
                stores[size].delete_namespace(TENANT, MEMORY)
                measurement.delete_seconds.append(time.perf_counter() - started)
    finally:
        for store in stores.values():
            store.close()
    return list(measurements.values())


def describe_neo4j(uri: str, database: str) -> dict[str, str]:
    """Return the server's version and memory settings, as far as this user may read them."""
    from neo4j import GraphDatabase
    from neo4j.exceptions import DriverError, Neo4jError

    password = os.environ["GRAPHMEM_NEO4J_PASSWORD"]
    user = os.environ.get("GRAPHMEM_NEO4J_USER", "neo4j")
    description: dict[str, str] = {"uri": uri}
    with GraphDatabase.driver(uri, auth=(user, password)) as driver:
        try:
            records, _, _ = driver.execute_query(
                "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition", database_=database
            )
        except (Neo4jError, DriverError) as error:
            raise SystemExit(f"could not query Neo4j at {uri} as {user}: {error}. Check --neo4j-uri and the credentials, or pass --stores libsql")
        for record in records:
            description["version"] = f"{record['name']} {', '.join(record['versions'])} {record['edition']}"
        try:
            records, _, _ = driver.execute_query(
                "CALL dbms.listConfig() YIELD name, value WHERE name IN $names RETURN name, value",
                names=["server.memory.heap.initial_size", "server.memory.heap.max_size", "server.memory.pagecache.size"],
                database_=database,
            )
        except Neo4jError as error:
            description["memory"] = f"not readable: {error.code}"
        else:
            description["memory"] = ", ".join(f"{record['name'].removeprefix('server.memory.')}={record['value']}" for record in records)
    return description


def describe_machine() -> dict[str, object]:
    """Return the CPU model, the number of cores, the Python version and the load average."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1_5_15": [round(value, 2) for value in load] if load else None,
    }


def summarise(measurement: Measurement) -> dict[str, object]:
    """Summarise the repeats of one measurement, with rates computed from the fastest first write."""
    best = min(measurement.write_seconds)
    nodes_and_edges = measurement.entities + measurement.relations
    all_rows = nodes_and_edges + measurement.mention_links

    def rounded(values: Sequence[float], function: Callable[[Sequence[float]], float]) -> float | None:
        return round(function(values), 3) if values else None

    # The steps of the fastest write, and the rate of the entity and relation statements alone.
    fastest_steps = measurement.step_seconds[measurement.write_seconds.index(best)] if measurement.step_seconds else {}
    entity_relation_seconds = sum(fastest_steps.get(step, 0.0) for step in ENTITY_RELATION_STEPS)

    return {
        **asdict(measurement),
        "step_seconds": {step: round(value, 3) for step, value in fastest_steps.items()},
        "entity_relation_statements_per_second": round(nodes_and_edges / entity_relation_seconds) if entity_relation_seconds else None,
        "write_seconds": [round(value, 3) for value in measurement.write_seconds],
        "write_cpu_seconds": [round(value, 3) for value in measurement.write_cpu_seconds],
        "server_cpu_seconds": [round(value, 2) for value in measurement.server_cpu_seconds],
        "rewrite_seconds": [round(value, 3) for value in measurement.rewrite_seconds],
        "communities_seconds": [round(value, 3) for value in measurement.communities_seconds],
        "delete_seconds": [round(value, 3) for value in measurement.delete_seconds],
        "best_write_seconds": round(best, 3),
        "median_write_seconds": rounded(measurement.write_seconds, statistics.median),
        "entities_relations_per_second": round(nodes_and_edges / best),
        "all_rows_per_second": round(all_rows / best),
        "best_rewrite_seconds": rounded(measurement.rewrite_seconds, min),
        "best_communities_seconds": rounded(measurement.communities_seconds, min),
        "meets_goal": nodes_and_edges / best >= GOAL_ROWS_PER_SECOND,
    }


def print_report(report: dict[str, object]) -> None:
    """Print the figures as a table for a reader."""
    graph = report["graph"]
    machine = report["machine"]
    print(f"corpus        {report['corpus']} ({graph['documents']} documents, {graph['chunks']} chunks)")
    print(
        f"graph         {graph['entities']} entities, {graph['relations']} relations, {graph['mention_links']} mention links, "
        f"{graph['communities']} communities"
    )
    print("resolution    without the embedding step (embed=None), so the figures measure the writes alone")
    print(f"build         {', '.join(f'{name} {value} s' for name, value in graph['build_seconds'].items())}")
    print(f"machine       {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")
    print(f"load average  {machine['load_average_1_5_15']} at the start, {report['load_average_at_end']} at the end")
    if "neo4j" in report:
        neo4j = report["neo4j"]
        print(f"neo4j         {neo4j['version']} at {neo4j['uri']}; {neo4j['memory']}")
    print(f"timing        fastest of {report['repeat']} repeats; rates use the fastest first write; goal {GOAL_ROWS_PER_SECOND:,} entities+relations/s")
    print()

    header = (
        f"{'store':<7} {'batch':>6} {'write s':>8} {'median s':>9} {'client cpu s':>12} {'server cpu s':>12} {'ent+rel/s':>10} "
        f"{'all/s':>8} {'rewrite s':>9} {'communities s':>13} {'delete s':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in report["results"]:
        print(format_row(row))
    print()
    print("all/s counts entities, relations and mention links. rewrite writes the same graph again, which the fingerprint skips.")
    print("delete s is delete_namespace on the written graph with its communities.")
    print("client cpu s and server cpu s are the least CPU time this process and the Neo4j server (--neo4j-pid) used in one first write.")
    for row in report["results"]:
        if row["step_seconds"]:
            steps = ", ".join(f"{step} {seconds} s" for step, seconds in row["step_seconds"].items())
            print(f"{row['store']} batch {row['batch_size']} steps of the fastest write: {steps}")
            print(f"  entities and relations over their own statements: {row['entity_relation_statements_per_second']:,}/s")
    for row in report["results"]:
        if any(row["rewrite_changed"]):
            print(f"WARNING: {row['store']} at batch {row['batch_size']} rewrote an unchanged graph: its fingerprint check did not hold")


def format_row(row: dict) -> str:
    """Format one store and batch size as a line of the table, with '-' where a figure was not measured."""

    def least(values: list[float], decimals: int) -> str:
        return f"{min(values):.{decimals}f}" if values else "-"

    return (
        f"{row['store']:<7} {row['batch_size']:>6} {row['best_write_seconds']:>8.2f} {row['median_write_seconds']:>9.2f} "
        f"{least(row['write_cpu_seconds'], 2):>12} {least(row['server_cpu_seconds'], 2):>12} "
        f"{row['entities_relations_per_second']:>10,} {row['all_rows_per_second']:>8,} {least(row['rewrite_seconds'], 3):>9} "
        f"{least(row['communities_seconds'], 2):>13} {least(row['delete_seconds'], 2):>8}"
    )


def run(arguments: argparse.Namespace) -> dict[str, object]:
    """Build the graph, measure every requested store and batch size, and collect the figures."""
    machine = describe_machine()
    # The server is described first, so that a wrong address or password fails before the graph is built.
    neo4j = describe_neo4j(arguments.neo4j_uri, arguments.neo4j_database) if "neo4j" in arguments.stores else None
    built = build_graph(arguments.corpus, arguments.limit, not arguments.skip_communities)
    report: dict[str, object] = {
        "corpus": str(arguments.corpus),
        "tenant": TENANT,
        "repeat": arguments.repeat,
        "graph": {
            "documents": built.documents,
            "chunks": built.chunks,
            "entities": len(built.graph.entities),
            "relations": len(built.graph.relations),
            "mention_links": built.mention_links,
            "communities": len(built.communities),
            "resolution": "embed=None (no embedding step)",
            "build_seconds": built.build_seconds,
        },
        "machine": machine,
    }

    measurements = []
    if "libsql" in arguments.stores:
        measurements.append(measure_libsql(built, arguments.repeat))
    if neo4j is not None:
        report["neo4j"] = neo4j
        measurements += measure_neo4j(
            built, arguments.neo4j_uri, arguments.neo4j_database, arguments.batch_sizes, arguments.repeat, arguments.neo4j_pid
        )

    report["results"] = [summarise(measurement) for measurement in measurements]
    report["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return report


def main() -> None:
    """Run the benchmark and print its figures."""
    logging.basicConfig(level=logging.WARNING)
    arguments = parse_arguments()
    try:
        report = run(arguments)
    except StoreError as error:
        raise SystemExit(f"the benchmark stopped: {error}") from error
    if arguments.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
