"""The Kafka resource: brokers, topics, credentials and batch limits of streaming ingestion.

Every field defaults to None, which means "use the GRAPHMEM_KAFKA_* variable or its default" (see
`graphmem_core.settings.Settings`). Give the SASL password as `EnvVar("...")` so it never lands in
run configuration.
"""

from dagster import ConfigurableResource

from graphmem_core.settings import Settings
from graphmem_dagster.ingestion.resources import settings_with


class KafkaResource(ConfigurableResource):
    """Connection, topics and batch limits of Kafka ingestion."""

    bootstrap_servers: str | None = None
    raw_topic: str | None = None
    dlq_topic: str | None = None
    consumer_group: str | None = None
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    batch_max_messages: int | None = None
    batch_max_bytes: int | None = None
    max_batches_per_tick: int | None = None
    retained_batches: int | None = None

    def settings(self) -> Settings:
        """Return the effective settings: these fields over the environment over the defaults."""
        settings = settings_with(
            {
                "kafka_bootstrap_servers": self.bootstrap_servers,
                "kafka_raw_topic": self.raw_topic,
                "kafka_dlq_topic": self.dlq_topic,
                "kafka_consumer_group": self.consumer_group,
                "kafka_security_protocol": self.security_protocol,
                "kafka_sasl_mechanism": self.sasl_mechanism,
                "kafka_sasl_username": self.sasl_username,
                "kafka_sasl_password": self.sasl_password,
                "kafka_batch_max_messages": self.batch_max_messages,
                "kafka_batch_max_bytes": self.batch_max_bytes,
                "kafka_max_batches_per_tick": self.max_batches_per_tick,
                "kafka_retained_batches": self.retained_batches,
            }
        )
        settings.validate_kafka()
        return settings
