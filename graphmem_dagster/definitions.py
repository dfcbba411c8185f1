"""The single entry point of graphmem's Dagster code location."""

from dagster import Definitions

from graphmem_dagster.backup.assets import backup_assets
from graphmem_dagster.backup.jobs import backup_job
from graphmem_dagster.backup.schedules import daily_backup_schedule
from graphmem_dagster.ingestion.assets import ingestion_assets
from graphmem_dagster.ingestion.jobs import ingest_job
from graphmem_dagster.ingestion.resources import EmbedderResource, ExtractorResource, GraphStoreResource
from graphmem_dagster.ingestion.sensors import inbox_sensor
from graphmem_dagster.streaming.resources import KafkaResource
from graphmem_dagster.streaming.sensors import kafka_sensor

defs = Definitions(
    assets=[*ingestion_assets, *backup_assets],
    jobs=[ingest_job, backup_job],
    schedules=[daily_backup_schedule],
    sensors=[inbox_sensor, kafka_sensor],
    resources={
        "graph_store": GraphStoreResource(),
        "embedder": EmbedderResource(),
        "extractor": ExtractorResource(),
        "kafka": KafkaResource(),
    },
)
