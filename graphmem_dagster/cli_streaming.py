"""The Kafka commands of `graphmem`: produce documents, create topics, show lag and dead letters."""

import argparse
import json
import sys
from pathlib import Path

from graphmem_core.settings import Settings, validate_namespace
from graphmem_core.streaming.produce import ProduceReport


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_progress(report: ProduceReport) -> None:
    _print(f"sent {report.documents} documents ({report.bytes / 1e6:.1f} MB), {report.delivered} acknowledged")


def command_produce(arguments: argparse.Namespace) -> int:
    """Send the documents under the paths to the raw topic and print a JSON summary."""
    from graphmem_core.streaming.kafka import ensure_topics
    from graphmem_core.streaming.produce import produce_paths

    settings = Settings.from_env()
    tenant = arguments.tenant or settings.tenant
    memory = arguments.memory or settings.memory
    validate_namespace(tenant, memory)
    if arguments.create_topics:
        for topic in ensure_topics(settings):
            _print(f"created topic {topic}")

    _print(f"producing to {settings.kafka_raw_topic} on {settings.kafka_bootstrap_servers} as {tenant}/{memory}")
    report = produce_paths(settings, [Path(p) for p in arguments.paths], tenant, memory, progress=_print_progress)
    if report.rejected:
        _print(f"{len(report.rejected)} inputs were rejected and not sent:")
    for rejection in report.rejected:
        _print(f"  {rejection.source}: {rejection.reason}")
    summary = {
        "topic": settings.kafka_raw_topic,
        "files": report.files,
        "documents": report.delivered,
        "bytes": report.bytes,
        "duplicates": report.duplicates,
        "rejected": len(report.rejected),
        "seconds": round(report.seconds, 2),
    }
    print(json.dumps(summary))
    return 0


def command_topics_create(arguments: argparse.Namespace) -> int:
    """Create the raw and dead-letter topics where they are missing."""
    from graphmem_core.streaming.kafka import ensure_topics

    settings = Settings.from_env()
    created = ensure_topics(settings)
    for topic in (settings.kafka_raw_topic, settings.kafka_dlq_topic):
        _print(f"{topic}: {'created' if topic in created else 'exists'}")
    return 0


def command_topics_lag(arguments: argparse.Namespace) -> int:
    """Print, per partition of the raw topic, the end offset, the sensor's committed offset and the lag."""
    from graphmem_core.streaming.kafka import open_reader

    settings = Settings.from_env()
    with open_reader(settings, settings.kafka_raw_topic, "graphmem-lag") as reader:
        partitions = reader.partitions()
        watermarks = reader.watermarks(partitions)
        committed = reader.committed(partitions)

    rows = []
    for partition in partitions:
        low, high = watermarks[partition]
        position = committed[partition]
        rows.append({"partition": partition, "end_offset": high, "committed": position, "lag": high - (position if position is not None else low)})
    if arguments.json:
        print(json.dumps({"topic": settings.kafka_raw_topic, "group": settings.kafka_consumer_group, "lag": sum(r["lag"] for r in rows), "partitions": rows}))
        return 0
    print(f"{'partition':>9} {'end offset':>11} {'committed':>10} {'lag':>8}")
    for row in rows:
        committed_text = "-" if row["committed"] is None else str(row["committed"])
        print(f"{row['partition']:>9} {row['end_offset']:>11} {committed_text:>10} {row['lag']:>8}")
    print(f"total lag of group {settings.kafka_consumer_group} on {settings.kafka_raw_topic}: {sum(r['lag'] for r in rows)}")
    return 0


def command_dead_letters(arguments: argparse.Namespace) -> int:
    """Print the first dead letters of the dead-letter topic as JSON lines: where each came from and why."""
    from graphmem_core.streaming.kafka import open_reader
    from graphmem_core.streaming.messages import HEADER_PREFIX

    settings = Settings.from_env()
    with open_reader(settings, settings.kafka_dlq_topic, "graphmem-dead-letters-reader") as reader:
        watermarks = reader.watermarks(reader.partitions())
        starts = {p: low for p, (low, _) in watermarks.items()}
        stops = {p: high for p, (_, high) in watermarks.items()}
        result = reader.read(starts, stops, max_records=arguments.limit)

    for record in sorted(result.records, key=lambda r: (r.partition, r.offset))[: arguments.limit]:
        errors = {name[len(HEADER_PREFIX) :]: value.decode("utf-8", "replace") for name, value in record.headers if name.startswith(HEADER_PREFIX)}
        value_preview = (record.value or b"")[: arguments.preview_bytes].decode("utf-8", "replace")
        print(json.dumps({"dead_letter": record.coordinates, **errors, "value_bytes": len(record.value or b""), "value_preview": value_preview}))
    return 0


def add_streaming_commands(subcommands, add_namespace) -> None:
    """Add `produce`, `topics` and `dead-letters` to the `graphmem` parser."""
    produce = subcommands.add_parser("produce", help="send documents from files to the raw Kafka topic (GRAPHMEM_KAFKA_* settings)")
    produce.add_argument("paths", nargs="+", help="files or folders of .txt, .md, .jsonl and .zip files")
    produce.add_argument("--create-topics", action="store_true", help="create the raw and dead-letter topics first where they are missing")
    add_namespace(produce)
    produce.set_defaults(handler=command_produce)

    topics = subcommands.add_parser("topics", help="create the Kafka topics or show the sensor's lag")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True)
    create = topic_commands.add_parser("create", help="create the raw and dead-letter topics where they are missing")
    create.set_defaults(handler=command_topics_create)
    lag = topic_commands.add_parser("lag", help="print the raw topic's end offsets, the sensor's committed offsets and the lag")
    lag.add_argument("--json", action="store_true", help="print JSON for scripts and autoscalers")
    lag.set_defaults(handler=command_topics_lag)

    dead_letters = subcommands.add_parser("dead-letters", help="print messages of the dead-letter topic with their reasons, as JSON lines")
    dead_letters.add_argument("--limit", type=int, default=100, help="dead letters to print at most (default 100)")
    dead_letters.add_argument("--preview-bytes", type=int, default=200, help="bytes of each original value to print (default 200)")
    dead_letters.set_defaults(handler=command_dead_letters)
