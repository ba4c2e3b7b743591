"""PyTorch frontend: a ``torch.nn.Module`` (or a saved ``torch.export`` program, ``.pt2``) in,
an ANN graph (``snc.ir``) out.

How it reads a model
--------------------
``from_torch`` traces the module with ``torch.export.export`` (eval mode, one example input), so
modules and their functional forms look alike: ``nn.Conv2d`` and ``F.conv2d`` both arrive as
``aten.conv2d``. ``from_exported`` then walks the exported FX graph once, in execution order, with
one handler per ATen operator (``_HANDLERS``). Every value is either

  * computed from the model input  -> an IR node (``_Tensor``: node name + sample shape), or
  * a constant (parameters, buffers, literals, and anything computed from them only, which is
    folded with torch right away: ``w.t()``, ``mean.view(1, 3, 1, 1)``, weight normalisation ...).

Both the default export IR (``aten.conv2d``, ``aten.linear``, ``aten.batch_norm`` ...) and the
core-ATen decomposition (``aten.convolution``, ``aten.addmm``, ``aten._native_batch_norm_legit_no_training``,
``aten.max_pool2d_with_indices`` + ``getitem``) are read. Any other operator on a computed tensor
raises ``UnsupportedOperator`` naming the FX node, its module and the supported operators: nothing
is skipped silently. The one deliberate exception is a *trailing* softmax / log_softmax, which is
dropped (argmax is unchanged) and recorded in ``graph.meta["notes"]``.

Batch convention
----------------
Axis 0 of every input is the batch and stays the batch: IR shapes exclude it, and an operation
that reduces, moves or merges axis 0 (``x.view(-1)``, ``torch.cat(..., dim=0)``, ``x.mean(0)``)
is unsupported. Shapes come from the trace (``node.meta["val"]``), so a model traced with a batch
of 1 is evaluated on any batch size.

IR node names
-------------
The owning module's qualified name (``features.0``, ``fc1``) when the module owns one IR node (or
is a ``torch.nn`` layer, used more than once: ``relu``, ``relu_1``); ``<module>.<fx name>`` for the
several operations of a custom module's ``forward``; the FX node name for top-level functional code.

Security of ``.pt2`` files
--------------------------
``torch.export.load`` unpickles parts of an archive: the example inputs saved by *every*
``torch.export.save`` (``data/sample_inputs/*.pt``, tried with ``weights_only=True``, then **retried
with weights_only=False**), payloads marked ``use_pickle``, legacy ``.pt`` weight files, custom and
opaque object constants; it also loads AOTInductor shared libraries and ``sympify``s (``eval``s)
symbolic-shape strings. ``load_pt2`` therefore never hands torch the user's file: it reads the zip
itself, refuses archives holding any of the above (``InvalidModel``), checks the shape
expressions against a strict grammar, and rebuilds an in-memory archive from the allowed entries,
with the example inputs emptied. torch then loads that copy while ``torch.load`` is replaced by a
function that refuses to run, so nothing in the file is ever unpickled.
"""
from .converter import SUPPORTED_OPS, from_exported, from_torch
from .pt2 import load_pt2
from .sequence import from_exported_sequence  # registers snc.lm.ops' operators, which .pt2 files may use

__all__ = ["from_torch", "from_exported", "from_exported_sequence", "load_pt2", "SUPPORTED_OPS"]
