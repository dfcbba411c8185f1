"""The `backup` job over the `graph_backup` asset."""

from dagster import AssetSelection, define_asset_job, in_process_executor

from graphmem_dagster.backup.assets import graph_backup

backup_job = define_asset_job(
    name="backup",
    selection=AssetSelection.assets(graph_backup),
    executor_def=in_process_executor,
    description="Copy the configured namespace from the graph store into the libSQL backup target.",
)
