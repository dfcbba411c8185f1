"""The sensor while its broker is down: it skips with the reason, keeps its cursor, then catches up.

The test starts a broker of its own with the project's script, so stopping it affects no other test.
"""

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import SensorResult, SkipReason, instance_for_test

from graphmem_core.stores import open_store
from tests.conftest import PROJECT_ROOT, service_url
from tests.streaming.conftest import KafkaProject, configure_kafka, podcast_texts

KAFKA_SCRIPT = PROJECT_ROOT / "scripts" / "services" / "kafka.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Broker:
    """A one-node Kafka started by scripts/services/kafka.sh in a state folder of the test's own."""

    def __init__(self, home: Path) -> None:
        # Reuse the jars of the shared broker's state folder, which saves a Maven run per test.
        shared_lib = Path(os.environ.get("GRAPHMEM_SERVICES_HOME", PROJECT_ROOT / ".services")) / "kafka" / "lib"
        if (shared_lib / ".pom.sha256").is_file():
            (home / "kafka").mkdir(parents=True)
            (home / "kafka" / "lib").symlink_to(shared_lib)
        self.port = free_port()
        self.environment = {
            **os.environ,
            "GRAPHMEM_SERVICES_HOME": str(home),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
        }

    def run(self, action: str) -> None:
        completed = subprocess.run(["bash", str(KAFKA_SCRIPT), action], env=self.environment, capture_output=True, text=True, timeout=180, check=False)
        assert completed.returncode == 0, f"kafka.sh {action} failed:\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    # The shared broker's address is required as a sign that this run may start Kafka servers.
    service_url("kafka")
    broker = Broker(tmp_path / "services")
    broker.run("start")
    try:
        yield broker
    finally:
        broker.run("stop")


def test_broker_down_skips_then_catches_up(own_broker: Broker, monkeypatch, tmp_path):
    settings = configure_kafka(monkeypatch, tmp_path, f"127.0.0.1:{own_broker.port}", GRAPHMEM_KAFKA_TIMEOUT_SECONDS="2")
    texts = podcast_texts(6)
    with instance_for_test() as instance:
        project = KafkaProject(settings=settings, instance=instance)
        project.produce_documents(texts[:3])
        first = project.tick(None)
        assert isinstance(first, SensorResult)
        assert len(first.run_requests) == 1

        own_broker.run("stop")
        down = project.tick(first.cursor)

        assert isinstance(down, SkipReason)
        assert f"no Kafka broker at 127.0.0.1:{own_broker.port}" in down.skip_message
        assert "cursor is kept" in down.skip_message

        own_broker.run("start")
        project.produce_documents(texts[3:], memory="stream")
        caught_up = project.tick(first.cursor)

        assert isinstance(caught_up, SensorResult)
        keys = [request.partition_key for request in first.run_requests + caught_up.run_requests]
        assert len(keys) == 2
        for key in keys:
            assert project.run(key).success

    store = open_store(settings)
    try:
        assert store.counts("acme", "stream")["documents"] == 6
    finally:
        store.close()
