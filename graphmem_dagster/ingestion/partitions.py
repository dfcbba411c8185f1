"""Partitions of the ingestion assets: one dynamic partition per ingestion batch."""

from dagster import DynamicPartitionsDefinition

# Partition keys are batch ids such as `batch-0f3a9c2b7d1e4a56`, derived from the batch's files.
batch_partitions = DynamicPartitionsDefinition(name="batches")
