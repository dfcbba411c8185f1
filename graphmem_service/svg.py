"""SVG drawings of the entity neighbourhood of a query: a deterministic force-directed layout in numpy.

The layout starts from a circle and runs a fixed number of Fruchterman-Reingold steps without
randomness, so the same graph is always drawn the same way. Every piece of text is escaped for XML.
"""

import html
import math
import re
from collections.abc import Sequence

import numpy as np

from graphmem_core.models import Entity, EntityType, Relation

# More nodes than this make labels overlap in a drawing of this size; the most relevant come first.
MAX_NODES = 30

LAYOUT_ITERATIONS = 120

# Pull towards the centre, so that components without edges between them stay in view.
GRAVITY = 0.05

WIDTH = 720
HEIGHT = 520
# Room around the drawing for labels and the legend, in SVG user units (pixels at 100 % zoom).
MARGIN = 40

MAX_LABEL_CHARS = 28

NODE_MIN_RADIUS = 6.0
NODE_MAX_RADIUS = 14.0

# One colour per entity type. The browser test looks for these colours in a screenshot, so the
# page's own styles use none of them.
TYPE_COLOURS: dict[EntityType, str] = {
    EntityType.PERSON: "#e4572e",
    EntityType.ORGANIZATION: "#2e86ab",
    EntityType.LOCATION: "#3bb273",
    EntityType.DATE: "#a15c9e",
    EntityType.QUANTITY: "#e1a100",
    EntityType.PRODUCT: "#17becf",
    EntityType.EVENT: "#d62778",
    EntityType.CONCEPT: "#7768ae",
    EntityType.OTHER: "#8c8c8c",
}

EDGE_COLOUR = "#b0b7c3"
LABEL_COLOUR = "#1f2933"

# Characters that XML 1.0 does not allow in a document, even escaped.
_INVALID_XML_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape_xml(text: str) -> str:
    """Return `text` safe inside an XML element or a double- or single-quoted attribute."""
    return html.escape(_INVALID_XML_CHARACTERS.sub("", text), quote=True)


def _shorten(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def force_layout(node_count: int, edges: Sequence[tuple[int, int]], iterations: int = LAYOUT_ITERATIONS) -> np.ndarray:
    """Return an (node_count, 2) array of positions in [0, 1] from Fruchterman-Reingold steps that start on a circle."""
    if node_count == 0:
        return np.zeros((0, 2))
    if node_count == 1:
        return np.full((1, 2), 0.5)

    angles = 2 * np.pi * np.arange(node_count) / node_count
    positions = np.column_stack([np.cos(angles), np.sin(angles)])
    # Ideal edge length for nodes spread over the square [-1, 1]^2 of area 4.
    ideal = math.sqrt(4.0 / node_count)
    temperature = 0.2
    cooling = (0.01 / temperature) ** (1.0 / max(iterations, 1))
    sources = np.array([source for source, _ in edges], dtype=int)
    targets = np.array([target for _, target in edges], dtype=int)

    for _ in range(iterations):
        delta = positions[:, None, :] - positions[None, :, :]
        distance = np.sqrt((delta**2).sum(axis=-1))
        np.fill_diagonal(distance, np.inf)
        distance = np.maximum(distance, 1e-3)
        # Repulsion k^2/d along the unit vector delta/d between every pair.
        displacement = (delta * (ideal**2 / distance**2)[..., None]).sum(axis=1)

        if len(sources):
            edge_delta = positions[sources] - positions[targets]
            edge_length = np.maximum(np.sqrt((edge_delta**2).sum(axis=1)), 1e-3)
            # Attraction d^2/k along the edge.
            pull = edge_delta * (edge_length / ideal)[:, None]
            np.add.at(displacement, sources, -pull)
            np.add.at(displacement, targets, pull)

        displacement -= GRAVITY * positions * node_count
        length = np.maximum(np.sqrt((displacement**2).sum(axis=1)), 1e-9)
        positions = positions + displacement / length[:, None] * np.minimum(length, temperature)[:, None]
        temperature *= cooling

    low = positions.min(axis=0)
    span = np.maximum(positions.max(axis=0) - low, 1e-9)
    return (positions - low) / span


def _node_radius(mention_count: int, largest: int) -> float:
    if largest <= 1:
        return NODE_MIN_RADIUS
    share = math.log1p(max(mention_count, 0)) / math.log1p(largest)
    return NODE_MIN_RADIUS + (NODE_MAX_RADIUS - NODE_MIN_RADIUS) * share


def render_graph_svg(entities: Sequence[Entity], relations: Sequence[Relation], title: str) -> str:
    """Draw the first MAX_NODES entities and the relations among them as a standalone SVG document."""
    nodes = list(entities[:MAX_NODES])
    index = {entity.id: position for position, entity in enumerate(nodes)}
    drawn_relations = [relation for relation in relations if relation.source_id in index and relation.target_id in index]
    edges = sorted({(index[relation.source_id], index[relation.target_id]) for relation in drawn_relations})
    unit_positions = force_layout(len(nodes), edges)
    scale = np.array([WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN])
    points = MARGIN + unit_positions * scale

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape_xml(title)}" font-family="sans-serif">',
        f"<title>{escape_xml(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]
    if not nodes:
        parts.append(f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle" fill="{LABEL_COLOUR}">No entities found for this query.</text>')
        parts.append("</svg>")
        return "\n".join(parts)

    heaviest = max((relation.weight for relation in drawn_relations), default=1.0)
    parts.append(f'<g stroke="{EDGE_COLOUR}" stroke-linecap="round">')
    for relation in drawn_relations:
        (x1, y1), (x2, y2) = points[index[relation.source_id]], points[index[relation.target_id]]
        width = 1.0 + 2.5 * relation.weight / heaviest if heaviest > 0 else 1.0
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke-width="{width:.1f}">'
            f"<title>{escape_xml(relation.type)} (weight {relation.weight:g})</title></line>"
        )
    parts.append("</g>")

    parts.append('<g font-size="9" fill="#52606d" text-anchor="middle">')
    for relation in drawn_relations:
        middle = (points[index[relation.source_id]] + points[index[relation.target_id]]) / 2
        parts.append(f'<text x="{middle[0]:.1f}" y="{middle[1] - 3:.1f}">{escape_xml(_shorten(relation.type, 20))}</text>')
    parts.append("</g>")

    largest = max(entity.mention_count for entity in nodes)
    parts.append('<g font-size="11">')
    for entity, (x, y) in zip(nodes, points):
        radius = _node_radius(entity.mention_count, largest)
        colour = TYPE_COLOURS.get(entity.type, TYPE_COLOURS[EntityType.OTHER])
        label = escape_xml(_shorten(entity.name))
        # Labels point away from the nearer side edge, so that long names stay inside the drawing.
        if x <= WIDTH / 2:
            label_x, anchor = x + radius + 3, "start"
        else:
            label_x, anchor = x - radius - 3, "end"
        parts.append(
            f'<g><title>{escape_xml(entity.name)} ({entity.type.value}, {entity.mention_count} mentions)</title>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{colour}" stroke="#ffffff" stroke-width="1.5"/>'
            f'<text x="{label_x:.1f}" y="{y + 4:.1f}" text-anchor="{anchor}" fill="{LABEL_COLOUR}" stroke="#ffffff" stroke-width="3" '
            f'paint-order="stroke">{label}</text></g>'
        )
    parts.append("</g>")

    parts.extend(_legend(sorted({entity.type for entity in nodes}, key=lambda kind: kind.value)))
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(types: list[EntityType]) -> list[str]:
    """Return SVG elements of a one-line legend of the entity types drawn, along the bottom edge."""
    parts = ['<g font-size="10">']
    x = 10.0
    y = HEIGHT - 12.0
    for kind in types:
        parts.append(f'<rect x="{x:.0f}" y="{y - 8:.0f}" width="9" height="9" fill="{TYPE_COLOURS[kind]}"/>')
        parts.append(f'<text x="{x + 13:.0f}" y="{y:.0f}" fill="{LABEL_COLOUR}">{escape_xml(kind.value.lower())}</text>')
        x += 20 + 7 * len(kind.value)
    parts.append("</g>")
    return parts
