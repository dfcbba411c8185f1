"""Personalised PageRank over a weighted undirected graph, as the graph query modes use it.

The random walk restarts at the seed vertices with probability `1 - damping` at every step, so
relevance spreads from the seeds along the edges and fades with distance. Vertices that no path
connects to a seed get no mass.
"""

from collections.abc import Mapping

import igraph
import numpy as np
from scipy import sparse

from graphmem_core.errors import InvalidInputError

# igraph's default damping (python-igraph 1.0). The walk restarts at a seed every 1 / 0.15, about 7,
# steps on average, so mass reaches well past two hops. On the retrieval benchmark local mode reached
# recall@5 74.6 with it, 73.2 with 0.7 and 68.8 with 0.5.
DEFAULT_DAMPING = 0.85

# Power iteration stops when the scores move by less than this in L1 norm between two steps. The
# error after stopping is at most this times damping / (1 - damping). On the query benchmark's podcast
# graph (18,000 vertices), 1e-6 took 3.7 ms a query against 5.5 ms at 1e-9, and 105 results in all
# four modes were identical at 1e-9, 1e-6 and 1e-5. At 1e-4, 5 of them changed. Going from 1e-6 to
# 1e-5 cut PPR from 3.2 to 2.5 ms, kept the chunks, entities and communities of 240 other results,
# and left every recall of benchmarks/retrieval.py unchanged.
TOLERANCE = 1e-5

# A bound on the steps; with damping 0.85 the tolerance is reached after well under 100.
MAX_ITERATIONS = 500


class TransitionMatrix:
    """The random-walk transition matrix of an undirected weighted graph, built once and reused per query.

    igraph's solver rebuilds its matrix on every call, which cost about 100 ms per query on a graph of
    18,000 vertices. A prebuilt sparse matrix makes each power-iteration step one sparse product.
    """

    def __init__(self, graph: igraph.Graph) -> None:
        self.vertex_count = graph.vcount()
        edges = np.asarray(graph.get_edgelist(), dtype=np.int64).reshape(-1, 2)
        weights = np.asarray(graph.es["weight"], dtype=np.float64) if "weight" in graph.es.attributes() else np.ones(len(edges))
        rows = np.concatenate([edges[:, 0], edges[:, 1]])
        columns = np.concatenate([edges[:, 1], edges[:, 0]])
        values = np.concatenate([weights, weights])
        adjacency = sparse.csr_matrix((values, (rows, columns)), shape=(self.vertex_count, self.vertex_count))
        strength = np.asarray(adjacency.sum(axis=1)).ravel()
        self.dangling = strength <= 0.0
        self._dangling_vertices = np.flatnonzero(self.dangling)
        inverse = np.divide(1.0, strength, out=np.zeros_like(strength), where=~self.dangling)
        # Column-stochastic for the non-dangling vertices: step(p) = transposed_walk @ p.
        self.transposed_walk = (sparse.diags(inverse) @ adjacency).T.tocsr()

    def personalized_pagerank(self, reset: np.ndarray, damping: float, tolerance: float = TOLERANCE) -> np.ndarray:
        """Return the stationary distribution of the walk that restarts at `reset` (which sums to 1), to within `tolerance`."""
        scores = reset.copy()
        restart = np.empty_like(reset)
        for _ in range(MAX_ITERATIONS):
            # A walker at a vertex without edges restarts at the seeds, as in igraph.
            stuck = float(scores[self._dangling_vertices].sum()) if self._dangling_vertices.size else 0.0
            following = self.transposed_walk @ scores
            following *= damping
            np.multiply(reset, damping * stuck + 1.0 - damping, out=restart)
            following += restart

            # The old scores are not needed after this step, so their buffer stores the change.
            scores -= following
            np.abs(scores, out=scores)
            change = float(scores.sum())
            scores = following
            if change < tolerance:
                break
        return scores


def personalized_pagerank(
    graph: igraph.Graph,
    seeds: Mapping[int, float],
    damping: float = DEFAULT_DAMPING,
    transition: TransitionMatrix | None = None,
    tolerance: float = TOLERANCE,
) -> np.ndarray:
    """Return the personalised PageRank of every vertex for a restart distribution over `seeds`.

    `seeds` maps vertex indices to non-negative weights, which are normalised to sum to 1. Edge
    weights come from the `weight` edge attribute when the graph has one. The result sums to 1 over
    the vertices, or is all zeros when no seed has a positive weight. Pass the graph's
    `TransitionMatrix` to skip building it on every call. Iteration stops once a step changes the
    scores by less than `tolerance` in L1 norm.
    """
    if not 0.0 <= damping < 1.0:
        raise InvalidInputError(f"damping={damping} is out of range: use a probability in [0, 1)")

    vertex_count = graph.vcount()
    reset = np.zeros(vertex_count, dtype=np.float64)
    for vertex, weight in seeds.items():
        if not 0 <= vertex < vertex_count:
            raise InvalidInputError(f"seed vertex {vertex} is not in the graph of {vertex_count} vertices: pass indices from 0 to {vertex_count - 1}")
        if not weight >= 0.0 or weight == float("inf"):
            raise InvalidInputError(f"seed vertex {vertex} has weight {weight}: weights must be finite and not negative")
        reset[vertex] += weight

    total = float(reset.sum())
    if total <= 0.0:
        return np.zeros(vertex_count, dtype=np.float64)

    if transition is None:
        transition = TransitionMatrix(graph)
    elif transition.vertex_count != vertex_count:
        raise InvalidInputError(f"the transition matrix has {transition.vertex_count} vertices, the graph {vertex_count}: build it from this graph")
    return transition.personalized_pagerank(reset / total, damping, tolerance)
