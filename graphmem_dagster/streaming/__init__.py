"""Continuous ingestion from Kafka: the broker resource, the sensor that turns offsets into batch partitions, and partition retirement."""
