"""Jobs over the ingestion assets."""

from dagster import AssetSelection, define_asset_job, in_process_executor

# The stages run one after another and share one loaded embedding model, so a single process is
# fastest on one machine. A Kubernetes deployment sets its own executor per step.
ingest_job = define_asset_job(
    name="ingest",
    selection=AssetSelection.groups("ingestion"),
    executor_def=in_process_executor,
    description="Ingest one batch of documents and rebuild the resolved graph and its communities.",
)
