"""Content-derived identifiers.

Every id that must survive a rerun is a truncated SHA-256 of the fields that define the thing,
joined with a separator that cannot occur inside them. Python's `hash()` is never used because it
changes between processes.
"""

import hashlib

_SEPARATOR = "\x1f"

# 128 bits keep the chance of a collision negligible for any realistic graph while keeping ids short.
_ID_HEX_CHARS = 32


def content_hash(*parts: str) -> str:
    """Return the hex SHA-256 digest of `parts` joined by the unit separator."""
    digest = hashlib.sha256(_SEPARATOR.join(parts).encode("utf-8"))
    return digest.hexdigest()


def make_id(prefix: str, *parts: str) -> str:
    """Return a stable id such as `doc_0f3a…`, derived from `parts`."""
    return f"{prefix}_{content_hash(*parts)[:_ID_HEX_CHARS]}"


def document_id(tenant: str, memory: str, normalized_text: str) -> str:
    """Return the id of a document: the same text in the same namespace is one document."""
    return make_id("doc", tenant, memory, normalized_text)


def chunk_id(document_id_: str, start: int, end: int, text: str) -> str:
    """Return the id of the chunk spanning characters `start:end` of a document."""
    return make_id("chk", document_id_, str(start), str(end), text)


def text_hash(text: str) -> str:
    """Return the hash that keys cached embeddings of `text`, independent of where it occurs."""
    return content_hash(text)


def entity_id(tenant: str, memory: str, canonical_name: str, entity_type: str) -> str:
    """Return the id of a resolved entity."""
    return make_id("ent", tenant, memory, canonical_name, entity_type)


def relation_id(tenant: str, memory: str, source_id: str, relation_type: str, target_id: str) -> str:
    """Return the id of the merged relation `source -[type]-> target`."""
    return make_id("rel", tenant, memory, source_id, relation_type, target_id)


def community_id(tenant: str, memory: str, level: int, member_ids: list[str]) -> str:
    """Return the id of a community, derived from its level and sorted member ids."""
    return make_id("com", tenant, memory, str(level), *sorted(member_ids))
