"""Graph stores behind one `GraphStore` interface, chosen by `GRAPHMEM_STORE`."""

from graphmem_core.settings import Settings
from graphmem_core.stores.base import GraphStore


def open_store(settings: Settings) -> GraphStore:
    """Open the store that `settings.store` names; the caller closes it."""
    if settings.store == "neo4j":
        # Imported here so that the embedded default never needs the neo4j driver.
        from graphmem_core.stores.neo4j_store import Neo4jGraphStore

        assert settings.neo4j_password is not None  # Settings.validate_services requires it.
        return Neo4jGraphStore(
            settings.neo4j_uri,
            user=settings.neo4j_user,
            password=settings.neo4j_password.get_secret_value(),
            database=settings.neo4j_database,
            batch_size=settings.neo4j_batch_size,
        )

    from graphmem_core.stores.libsql_store import LibsqlGraphStore

    return LibsqlGraphStore(settings.database_path)


__all__ = ["GraphStore", "open_store"]
