"""``fold-affine``: fold constant elementwise scale/shift (ScaleShift) into affine neighbours.

ScaleShift y = x * s + t comes from constant Sub/Mul/Div/Add in a model (typically input
normalisation) or from a BatchNorm with nothing to fold into. Folds, each exact:

* two ScaleShifts in a row merge: (x s1 + t1) s2 + t2 = x (s1 s2) + (t1 s2 + t2);
* after a Dense/Conv2d, per-output-channel constants fold into its weights and bias;
* before Dense layers: W' = W diag(s), b' = b + W t;
* before Conv2d layers: a per-input-channel scale folds into the kernel; the shift folds into
  the bias only without padding (with zero padding the border outputs see fewer shifted inputs,
  so the shift stays and ``convert`` turns it into an exact per-neuron bias current);
* before a Flatten or Reshape (input normalisation then Flatten, as exported from PyTorch) the
  ScaleShift moves after it, its constants reshaped element for element, and then folds on.

What cannot fold stays; ``convert`` handles any remaining ScaleShift exactly.
"""
from __future__ import annotations

import numpy as np

from snc.ir import Conv2d, Dense, Graph, ScaleShift, affine

from . import PassContext

NAME = "fold-affine"


def _fold_into_previous(g: Graph, name: str, node: ScaleShift, shapes) -> bool:
    (src,) = g.inputs_of(name)
    prev = g.nodes[src]
    if not isinstance(prev, (Dense, Conv2d)) or g.users_of(src) != [name] or src in g.outputs:
        return False
    folded = affine.into_linear(prev, node.scale, node.shift, shapes[name])
    if folded is None:
        return False
    g.replace(src, folded)
    g.bypass(name)
    return True


def _conv_input_channels(conv) -> np.ndarray:
    """Input channel read by each (output channel, kernel input index) of a grouped conv."""
    c_out, c_in_g = conv.weight.shape[:2]
    per_group_out = c_out // conv.groups
    return (np.arange(c_out)[:, None] // per_group_out) * c_in_g + np.arange(c_in_g)[None, :]


def _fold_into_users(g: Graph, name: str, scale, shift, shapes, ctx=None) -> bool:
    """Fold y = x*scale + shift (shift may be None) into every user of ``name`` (all must be Dense
    or Conv2d, per-input-channel for convolutions): W' = W diag(scale), b' = b + W shift. A
    shift in front of a padded convolution is not a per-channel bias (border outputs see fewer
    shifted inputs), so then nothing folds; ``convert`` computes that bias exactly and folds the
    remaining scale afterwards (``fold_scale_into_users``). Returns True if the node was removed."""
    users = g.users_of(name)
    if not users or name in g.outputs or any(g.nodes[u].kind not in ("Dense", "Conv2d") for u in users):
        return False
    if any(g.input_count(u) != 1 for u in users):
        return False
    shape = shapes[name]
    plans = []
    for u in users:
        nxt = g.nodes[u]
        w = nxt.weight.astype(np.float64)
        if nxt.kind == "Dense":
            s = np.broadcast_to(scale, shape).reshape(-1).astype(np.float64)
            new = {"weight": (w * s[None, :]).astype(np.float32)}
            if shift is not None:
                t = np.broadcast_to(shift, shape).reshape(-1).astype(np.float64)
                new["bias"] = np.asarray((nxt.bias if nxt.bias is not None else 0.0) + w @ t, np.float32)
        else:
            s = affine.per_channel(scale, shape)
            t = None if shift is None else affine.per_channel(shift, shape)
            if s is None or (shift is not None and t is None):
                return False
            cin = _conv_input_channels(nxt)
            new = {"weight": (w * s[cin][:, :, None, None]).astype(np.float32)}
            if t is not None and np.any(t != 0):
                if any(nxt.padding):
                    if ctx is not None:
                        ctx.note(NAME, f"shift {name!r} before the padded convolution {u!r} is left for convert "
                                       "(it becomes an exact per-neuron bias current)", node=name)
                    return False
                bias = (nxt.bias if nxt.bias is not None else 0.0) + (w * t[cin][:, :, None, None]).sum(axis=(1, 2, 3))
                new["bias"] = np.asarray(bias, np.float32)
        plans.append((u, nxt.replace(**new)))
    for u, node in plans:
        g.replace(u, node)
    g.bypass(name)
    return True


def _move_past_reshape(g: Graph, name: str, node: ScaleShift, shapes) -> str | None:
    """reshape(x * s + t) = reshape(x) * reshape(s) + reshape(t) for elementwise constants:
    move the ScaleShift after its only user when that is a Flatten/Reshape. Returns the user."""
    users = g.users_of(name)
    if len(users) != 1 or name in g.outputs or g.input_count(users[0]) != 1:
        return None
    (user,) = users
    if g.nodes[user].kind not in ("Flatten", "Reshape"):
        return None
    before, after = shapes[name], shapes[user]
    scale = np.broadcast_to(node.scale, before).reshape(after)
    shift = np.broadcast_to(node.shift, before).reshape(after)
    # Keep scalars scalar (a per-element copy only where the constants vary).
    scale = scale.reshape(-1)[:1].reshape((1,) * len(after)) if np.all(scale == scale.reshape(-1)[0]) else scale
    shift = shift.reshape(-1)[:1].reshape((1,) * len(after)) if np.all(shift == shift.reshape(-1)[0]) else shift
    later = g.users_of(user)
    g.bypass(name)
    moved = g.add(g.unique_name(name), ScaleShift(scale=np.array(scale, np.float32), shift=np.array(shift, np.float32),
                                                  meta=dict(node.meta)), [user])
    for u in later:
        g.set_inputs(u, [moved if x == user else x for x in g.inputs_of(u)])
    g.outputs = [moved if o == user else o for o in g.outputs]
    return user


def fold_scale_into_users(g: Graph, name: str, shapes) -> bool:
    """Fold a linear Scale node into the weights of its users when they are all Dense or Conv2d
    (per-input-channel gains for convolutions). Returns True if the node was removed."""
    return _fold_into_users(g, name, g.nodes[name].scale, None, shapes)


def fold_affine(graph: Graph, ctx: PassContext) -> Graph:
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        shapes = g.infer_shapes()
        for name in g.topological_order():
            node = g.nodes.get(name)
            if node is None or node.kind != "ScaleShift":
                continue
            users = g.users_of(name)
            if np.all(node.scale == 1) and np.all(node.shift == 0) and name not in g.outputs:
                g.bypass(name)
                ctx.note(NAME, f"removed identity scale/shift {name!r}", node=name)
                changed = True
                break
            if len(users) == 1 and g.nodes[users[0]].kind == "ScaleShift" and name not in g.outputs:
                nxt = g.nodes[users[0]]
                merged = affine.compose(node, nxt.scale, nxt.shift, meta=nxt.meta)
                g.replace(users[0], merged)
                g.bypass(name)
                ctx.note(NAME, f"merged scale/shift {name!r} into {users[0]!r}", node=users[0])
                changed = True
                break
            if _fold_into_previous(g, name, node, shapes):
                ctx.note(NAME, f"folded scale/shift {name!r} into the layer before it", node=name)
                changed = True
                break
            if _fold_into_users(g, name, node.scale, node.shift, shapes, ctx):
                ctx.note(NAME, f"folded scale/shift {name!r} into {users}", node=name)
                changed = True
                break
            moved_past = _move_past_reshape(g, name, node, shapes)
            if moved_past is not None:
                ctx.note(NAME, f"moved scale/shift {name!r} after {moved_past!r}", node=name)
                changed = True
                break
    return g
