"""Streaming ingestion: the Kafka message format, batch keys over offset ranges, and broker access.

`messages` and `offsets` need no broker, while `kafka` wraps the confluent-kafka client.
"""
