"""Small helpers for infercc's own graph rewrites on onnx protobufs: who produces and reads each value, constant
lookup, attributes, and dropping what nothing reads any more."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np


class GraphIndex:
    """Producer/consumer maps and constant lookup over an onnx GraphProto."""

    def __init__(self, graph: Any) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.outputs = {o.name for o in graph.output}

    def op(self, name: str, op_type: str) -> Any:
        """The node producing `name` if it is `op_type` in the default domain and feeds nothing else."""
        node = self.producer.get(name)
        if node is None or node.op_type != op_type or node.domain not in ("", "ai.onnx"):
            return None
        return node

    def sole_use(self, name: str) -> bool:
        return len(self.consumers.get(name, [])) == 1 and name not in self.outputs

    def const(self, name: str) -> np.ndarray | None:
        return self.constants.get(name)

    def ints(self, name: str) -> list[int] | None:
        value = self.const(name)
        return None if value is None else [int(v) for v in np.asarray(value).ravel()]


def attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def remove_dead(graph: Any) -> None:
    """Drop the nodes and initializers nothing reads any more (the replaced chains)."""
    needed = {o.name for o in graph.output}
    inputs = {i.name for i in graph.input}  # an initializer that is also an input is its default: kept
    alive = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            alive.append(node)
            needed.update(i for i in node.input if i)
            needed.update(_subgraph_reads(node))
    kept_nodes = [_copy(n) for n in reversed(alive)]
    kept_inits = [_copy(i) for i in graph.initializer if i.name in needed or i.name in inputs]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)


def _subgraph_reads(node: Any) -> set[str]:
    """Every value the node's subgraphs (If/Loop/Scan bodies, nested to any depth) read or return."""
    reads: set[str] = set()
    for attribute in node.attribute:
        for sub in [attribute.g, *attribute.graphs]:
            reads.update(o.name for o in sub.output)
            for inner in sub.node:
                reads.update(i for i in inner.input if i)
                reads.update(_subgraph_reads(inner))
    return reads


def _copy(message: Any) -> Any:
    duplicate = type(message)()
    duplicate.CopyFrom(message)
    return duplicate
