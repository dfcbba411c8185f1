"""The SVG drawing of an entity neighbourhood: escaped text, a deterministic layout, an empty graph."""

import xml.etree.ElementTree as ElementTree

import numpy as np

from graphmem_core.models import Entity, EntityType, Relation, RelationEvidence
from graphmem_service.svg import MAX_NODES, force_layout, render_graph_svg

SVG = "{http://www.w3.org/2000/svg}"

HOSTILE_NAME = '<script>alert("x")</script> & \'quotes\' \x07bell'


def entity(number: int, name: str | None = None, kind: EntityType = EntityType.PERSON) -> Entity:
    return Entity(
        id=f"ent_{number:04d}", tenant="t", memory="m", name=name or f"Entity {number}", type=kind, mention_count=number + 1
    )


def relation(source: int, target: int, kind: str = "related_to") -> Relation:
    return Relation(
        id=f"rel_{source}_{target}",
        tenant="t",
        memory="m",
        source_id=f"ent_{source:04d}",
        target_id=f"ent_{target:04d}",
        type=kind,
        weight=1.0,
        provenance=[RelationEvidence(chunk_id="chk", start=0, end=1)],
    )


def test_hostile_text_escaped():
    entities = [entity(0, HOSTILE_NAME), entity(1, kind=EntityType.ORGANIZATION)]
    relations = [relation(0, 1, kind='<b onload="x">')]

    svg = render_graph_svg(entities, relations, title=f"query {HOSTILE_NAME}")
    root = ElementTree.fromstring(svg)

    assert "<script" not in svg
    assert "<b " not in svg
    assert root.find(f"{SVG}script") is None
    assert root.find(f"{SVG}title").text == 'query <script>alert("x")</script> & \'quotes\' bell'
    labels = [element.text for element in root.iter(f"{SVG}text")]
    assert '<script>alert("x")</script>…' in labels


def test_layout_deterministic():
    edges = [(0, 1), (1, 2), (2, 0), (3, 4)]

    first = force_layout(6, edges)
    second = force_layout(6, edges)

    np.testing.assert_array_equal(first, second)
    assert first.shape == (6, 2)
    assert np.isfinite(first).all()
    assert first.min() >= 0.0
    assert first.max() <= 1.0
    distances = np.linalg.norm(first[:, None, :] - first[None, :, :], axis=-1)
    assert distances[~np.eye(6, dtype=bool)].min() > 0.05, "no two nodes should overlap"


def test_nodes_capped_and_coloured():
    entities = [entity(number, kind=list(EntityType)[number % len(EntityType)]) for number in range(MAX_NODES + 10)]
    relations = [relation(number, number + 1) for number in range(MAX_NODES + 9)]

    root = ElementTree.fromstring(render_graph_svg(entities, relations, title="many"))

    circles = root.findall(f".//{SVG}circle")
    assert len(circles) == MAX_NODES
    assert len(root.findall(f".//{SVG}line")) == MAX_NODES - 1
    assert len({circle.get("fill") for circle in circles}) == len(EntityType)


def test_empty_graph_message():
    root = ElementTree.fromstring(render_graph_svg([], [], title="nothing"))

    assert root.findall(f".//{SVG}circle") == []
    assert "No entities" in "".join(element.text or "" for element in root.iter(f"{SVG}text"))
