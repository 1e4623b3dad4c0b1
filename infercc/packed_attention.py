"""Fuse PyTorch's `nn.MultiheadAttention` (one packed QKV projection) into ONNX Runtime's `Attention` op.

onnxscript's rules and ONNX Runtime's transformer optimizer look for three separate Q, K and V projections; the
dynamo export of `nn.MultiheadAttention` (ViT, CLIP-style encoders) has one MatMul with a [E, 3E] weight, then
splits heads through Reshape/Unsqueeze/Transpose/Squeeze/Gather and computes softmax(q k^T) v with the scale
applied to q and k. `com.microsoft.Attention` takes exactly that packed weight, so the whole chain up to the
output projection becomes one node (one GEMM and a fused attention kernel on CUDA).

The match is exact: every node on the chain, every permutation and every reshape target is checked, and a chain
that differs in any way (a mask, dropout, another layout) is left as it is. Only self-attention over a
[batch, sequence, embed] input (or [sequence, batch, embed] with batch_first=False) is matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from infercc.graphedit import GraphIndex as _Graph
from infercc.graphedit import attr as _attr
from infercc.graphedit import remove_dead

MS_DOMAIN = "com.microsoft"


@dataclass
class _Match:
    x: str  # [B, S, E] input of the attention (before any batch_first transpose)
    seq_first: bool  # the model's tensors are [S, B, E]: transposes go around the fused node
    weight: np.ndarray  # [E, 3E]
    bias: np.ndarray  # [3E]
    heads: int
    scale: float
    out_weight: np.ndarray  # [E, E] as x @ w
    out_bias: np.ndarray | None
    output: str  # the value the chain ends in, [B, S, E] (or [S, B, E] when seq_first)


def _transpose(g: _Graph, name: str, perm: list[int]) -> str | None:
    node = g.op(name, "Transpose")
    return node.input[0] if node is not None and list(_attr(node, "perm", [])) == perm else None


def _reshape(g: _Graph, name: str) -> tuple[str, list[int]] | None:
    node = g.op(name, "Reshape")
    if node is None or _attr(node, "allowzero", 0) not in (0, 1):
        return None
    shape = g.ints(node.input[1])
    return (node.input[0], shape) if shape is not None else None


def _scaled(g: _Graph, name: str) -> tuple[str, float]:
    """Strip a Mul by a scalar constant: (input, factor); (name, 1.0) when there is none."""
    node = g.op(name, "Mul")
    if node is not None:
        for i, j in ((0, 1), (1, 0)):
            value = g.const(node.input[j])
            if value is not None and value.size == 1:
                return node.input[i], float(value.ravel()[0])
    return name, 1.0


def _head_split(g: _Graph, name: str, index: int, seq: int, d: int) -> str | None:
    """`Reshape(Gather(P, index), [S, -1, d])` -> P (the stacked [3, S, B, E] projection)."""
    step = _reshape(g, name)
    if step is None or step[1][0] != seq or step[1][1:] != [-1, d]:
        return None
    gather = g.op(step[0], "Gather")
    if gather is None or _attr(gather, "axis", 0) != 0 or g.ints(gather.input[1]) != [index]:
        return None
    return gather.input[0]


def _query(g: _Graph, name: str) -> tuple[str, int, int, int, float] | None:
    """q*c <- Reshape([-1,H,S,d]) <- Transpose(1,0,2) <- head split of P[0]: (P, H, S, d, c)."""
    q4, factor = _scaled(g, name)
    step = _reshape(g, q4)
    if step is None or len(step[1]) != 4 or step[1][0] != -1:
        return None
    _, heads, seq, d = step[1]
    q3 = _transpose(g, step[0], [1, 0, 2])
    packed = q3 and _head_split(g, q3, 0, seq, d)
    return (packed, heads, seq, d, factor) if packed else None


def _key(g: _Graph, name: str, heads: int, seq: int, d: int) -> tuple[str, float] | None:
    """k^T*c from the head split of P[1], in either form the exporter writes:
    Reshape([-1,H,d,S]) <- Transpose(0,2,1) [<- Reshape([-1,S,d])] <- Transpose(1,0,2) <- split, or
    [Reshape([-1,H,d,S]) <-] Transpose(0,1,3,2) <- Reshape([-1,H,S,d]) <- Transpose(1,0,2) <- split."""
    k4, factor = _scaled(g, name)
    step = _reshape(g, k4)
    if step is not None and step[1] != [-1, heads, d, seq]:
        return None
    k4 = step[0] if step is not None else k4
    kt = _transpose(g, k4, [0, 2, 1])
    if kt is None:
        per_head = _transpose(g, k4, [0, 1, 3, 2])
        split = per_head and _reshape(g, per_head)
        if not split or split[1] != [-1, heads, seq, d]:
            return None
        kt = split[0]
    flat = _reshape(g, kt)  # a no-op Reshape([-1,S,d]) some exports keep
    if flat is not None and flat[1] == [-1, seq, d]:
        kt = flat[0]
    k3 = _transpose(g, kt, [1, 0, 2])
    packed = k3 and _head_split(g, k3, 1, seq, d)
    return (packed, factor) if packed else None


def _value(g: _Graph, name: str, heads: int, seq: int, d: int) -> str | None:
    step = _reshape(g, name)
    if step is None or step[1] != [-1, heads, seq, d]:
        return None
    v3 = _transpose(g, step[0], [1, 0, 2])
    return v3 and _head_split(g, v3, 2, seq, d)


def _projection(g: _Graph, packed: str, seq: int, embed: int) -> tuple[str, np.ndarray, np.ndarray] | None:
    """P <- Squeeze(-2) <- Transpose(3,1,2,0,4) <- Unsqueeze(0) <- Reshape([S,-1,3,E]) <- x @ W (+ b)."""
    squeeze = g.op(packed, "Squeeze")
    if squeeze is None or len(squeeze.input) < 2 or g.ints(squeeze.input[1]) not in ([-2], [3]):
        return None
    unsqueezed = _transpose(g, squeeze.input[0], [3, 1, 2, 0, 4])
    unsqueeze = unsqueezed and g.op(unsqueezed, "Unsqueeze")
    if not unsqueeze or len(unsqueeze.input) < 2 or g.ints(unsqueeze.input[1]) != [0]:
        return None
    step = _reshape(g, unsqueeze.input[0])
    if step is None or step[1] != [seq, -1, 3, embed]:
        return None
    qkv, bias = step[0], np.zeros(3 * embed, np.float32)
    add = g.op(qkv, "Add")
    if add is not None:
        value = g.const(add.input[1])
        if value is None or value.shape != (3 * embed,):
            return None
        qkv, bias = add.input[0], value
    matmul = g.op(qkv, "MatMul")
    weight = matmul is not None and g.const(matmul.input[1])
    if weight is None or weight is False or weight.shape != (embed, 3 * embed):
        return None
    return matmul.input[0], weight, bias


def _output(g: _Graph, context: str, seq: int, embed: int) -> tuple[str, np.ndarray, Any, bool] | None:
    """context [B,H,S,d] -> Transpose(2,0,1,3) -> Reshape([-1,E]) -> Gemm/MatMul(+Add) -> Reshape([S,-1,E])
    [-> Transpose(1,0,2)]: (last value, W_out as x @ W, b_out, ends batch-first)."""
    consumers = g.consumers.get(context, [])
    if len(consumers) != 1 or consumers[0].op_type != "Transpose":
        return None
    if list(_attr(consumers[0], "perm", [])) != [2, 0, 1, 3]:
        return None
    flat = _single(g, consumers[0].output[0], "Reshape")
    if flat is None or g.ints(flat.input[1]) != [-1, embed]:
        return None
    linear = _single(g, flat.output[0], "Gemm") or _single(g, flat.output[0], "MatMul")
    if linear is None:
        return None
    found = _linear_weights(g, linear, embed)
    if found is None:
        return None
    weight, bias, last = found
    back = _single(g, last, "Reshape")
    if back is None or g.ints(back.input[1]) != [seq, -1, embed]:
        return None
    final = _single(g, back.output[0], "Transpose")
    if final is not None and list(_attr(final, "perm", [])) == [1, 0, 2]:
        return final.output[0], weight, bias, True
    return back.output[0], weight, bias, False


def _single(g: _Graph, name: str, op_type: str) -> Any:
    users = g.consumers.get(name, [])
    if len(users) == 1 and users[0].op_type == op_type and users[0].domain in ("", "ai.onnx"):
        return users[0] if name not in g.outputs else None
    return None


def _linear_weights(g: _Graph, node: Any, embed: int) -> tuple[np.ndarray, Any, str] | None:
    weight = g.const(node.input[1])
    if weight is None or weight.shape != (embed, embed):
        return None
    if node.op_type == "Gemm":
        if _attr(node, "transA", 0) or _attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0:
            return None
        weight = weight.T if _attr(node, "transB", 0) else weight
        bias = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if len(node.input) > 2 and node.input[2] and (bias is None or bias.size != embed):
            return None
        return np.ascontiguousarray(weight), None if bias is None else bias.reshape(embed), node.output[0]
    add = _single(g, node.output[0], "Add")
    bias = add is not None and g.const(add.input[1])
    if add is not None and bias is not None and bias is not False and bias.shape == (embed,):
        return weight, bias, add.output[0]
    return weight, None, node.output[0]


def _match(g: _Graph, softmax: Any) -> _Match | None:
    if _attr(softmax, "axis", -1) not in (-1, 3):
        return None
    scores = g.op(softmax.input[0], "MatMul")
    users = g.consumers.get(softmax.output[0], [])
    if scores is None or not g.sole_use(scores.output[0]) or len(users) != 1 or users[0].op_type != "MatMul":
        return None
    context = users[0]
    query = _query(g, scores.input[0])
    if query is None or context.input[0] != softmax.output[0]:
        return None
    packed, heads, seq, d, q_factor = query
    key = _key(g, scores.input[1], heads, seq, d)
    if key is None or key[0] != packed or _value(g, context.input[1], heads, seq, d) != packed:
        return None
    embed = heads * d
    projection = _projection(g, packed, seq, embed)
    output = _output(g, context.output[0], seq, embed)
    if projection is None or output is None:
        return None
    x, weight, bias = projection
    last, out_weight, out_bias, batch_first = output
    source = _transpose(g, x, [1, 0, 2]) if batch_first else x
    if source is None:
        return None
    return _Match(
        x=source,
        seq_first=not batch_first,
        weight=weight,
        bias=bias,
        heads=heads,
        scale=q_factor * key[1],
        out_weight=out_weight,
        out_bias=out_bias,
        output=last,
    )


def _replacement(match: _Match, index: int) -> tuple[list[Any], list[Any]]:
    """Nodes and initializers computing match.output from match.x with one Attention node."""
    from onnx import helper, numpy_helper

    prefix = f"infercc_packed_attention_{index}"
    dtype = match.weight.dtype
    inits = [
        numpy_helper.from_array(match.weight.astype(dtype), f"{prefix}_qkv_weight"),
        numpy_helper.from_array(match.bias.astype(dtype), f"{prefix}_qkv_bias"),
        numpy_helper.from_array(match.out_weight.astype(dtype), f"{prefix}_out_weight"),
    ]
    nodes = []
    x = match.x
    if match.seq_first:
        nodes.append(helper.make_node("Transpose", [x], [f"{prefix}_x"], perm=[1, 0, 2], name=f"{prefix}_in"))
        x = f"{prefix}_x"
    nodes.append(
        helper.make_node(
            "Attention",
            [x, inits[0].name, inits[1].name],
            [f"{prefix}_context"],
            domain=MS_DOMAIN,
            name=prefix,
            num_heads=match.heads,
            scale=match.scale,
        )
    )
    projected = f"{prefix}_projected"
    last = match.output if match.out_bias is None and not match.seq_first else projected
    nodes.append(
        helper.make_node("MatMul", [f"{prefix}_context", inits[2].name], [last], name=f"{prefix}_out")
    )
    if match.out_bias is not None:
        inits.append(numpy_helper.from_array(match.out_bias.astype(dtype), f"{prefix}_out_bias"))
        biased = match.output if not match.seq_first else f"{prefix}_biased"
        nodes.append(helper.make_node("Add", [last, inits[-1].name], [biased], name=f"{prefix}_out_bias"))
        last = biased
    if match.seq_first:
        nodes.append(
            helper.make_node("Transpose", [last], [match.output], perm=[1, 0, 2], name=f"{prefix}_back")
        )
    return nodes, inits


def fuse_packed_attention(model: Any) -> tuple[Any, dict[str, int]]:
    """A copy of `model` (onnx ModelProto) with every matched packed-QKV self-attention as one Attention node."""
    import onnx

    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    g = _Graph(fused.graph)
    matches = [m for m in (_match(g, n) for n in list(fused.graph.node) if n.op_type == "Softmax") if m]
    if not matches:
        return fused, {"PackedQkvAttention": 0}
    for index, match in enumerate(matches):
        nodes, inits = _replacement(match, index)
        position = next(i for i, n in enumerate(fused.graph.node) if match.output in n.output)
        del fused.graph.node[position]  # the chain's last node; remove_dead drops the rest
        for offset, node in enumerate(nodes):
            fused.graph.node.insert(position + offset, node)
        fused.graph.initializer.extend(inits)
    remove_dead(fused.graph)
    if not any(o.domain == MS_DOMAIN for o in fused.opset_import):
        fused.opset_import.append(onnx.helper.make_opsetid(MS_DOMAIN, 1))
    return fused, {"PackedQkvAttention": len(matches)}
