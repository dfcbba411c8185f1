"""The `graph_backup` asset: a thin wrapper over `graphmem_core.backup.backup_namespace`."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from graphmem_core.backup import backup_namespace, display_target, is_remote_target
from graphmem_dagster.ingestion.resources import GraphStoreResource

GROUP = "backup"


@asset(group_name=GROUP, kinds={"libsql"})
def graph_backup(context: AssetExecutionContext, graph_store: GraphStoreResource) -> MaterializeResult:
    """Copy the configured namespace into the libSQL backup target (GRAPHMEM_BACKUP_URL, default HOME/backups/graph.db).

    Each materialisation replaces the previous backup of the namespace, so the backup contains the
    store's content at the time of the last run.
    """
    settings = graph_store.settings()
    target = display_target(settings.backup_target)
    context.log.info(f"backing up {settings.tenant}/{settings.memory} from the {settings.store} store to {target}")

    with graph_store.open() as store:
        counts = backup_namespace(store, settings, settings.tenant, settings.memory)

    metadata: dict[str, object] = {
        "tenant": settings.tenant,
        "memory": settings.memory,
        "source_store": settings.store,
        # `display_target` drops user info and query, so no credential reaches the metadata.
        "target": MetadataValue.url(target) if is_remote_target(target) else MetadataValue.path(target),
        **counts,
    }
    return MaterializeResult(metadata=metadata)


backup_assets = [graph_backup]
