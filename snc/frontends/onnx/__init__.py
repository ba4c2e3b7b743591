"""ONNX frontend: an ONNX model (opset 7 and later) in, an ANN graph (snc.ir) out.

The graph computes what the ONNX model computes, sample by sample: axis 0 of every ONNX
tensor is the batch and is dropped from the IR shapes (an ONNX tensor (N, C, H, W) is an IR
value of shape (C, H, W)).

How operators map (``x`` is an activation, ``c`` a constant):

    Conv                 -> Conv2d (auto_pad resolved to explicit pads)
    Gemm, MatMul(x, c)   -> Dense   (alpha folded into W, beta * C into the bias; a following
                                     Add(c) becomes the bias: "MatMul followed by Add")
    BatchNormalization   -> BatchNorm (per-activation statistics -> ScaleShift)
    Relu, Clip(0, c)     -> ReLU(ceiling=c)
    MaxPool, AveragePool -> MaxPool2d, AvgPool2d; GlobalAveragePool -> AvgPool2d over (H, W)
    Pad (zeros, H/W)     -> folded into the padding of the next Conv / AveragePool / MaxPool
    Flatten, Reshape, Squeeze, Unsqueeze -> Flatten or Reshape;  Transpose -> Transpose
    Concat               -> Concat;  Add(x, x') / Sum -> Add (residual joins)
    Add/Sub/Mul/Div(x, c) -> ScaleShift  y = x * scale + shift (consecutive ones merged)
    Identity, Dropout, Cast to float -> bypassed;  trailing Softmax -> dropped (argmax unchanged)

Every node whose inputs are all constants (Constant, shape arithmetic such as
Shape -> Gather -> Unsqueeze -> Concat feeding a Reshape, weight preprocessing) is evaluated
at load time; ``Shape`` of an activation is its static shape with batch 1. Anything else
raises ``UnsupportedOperator`` naming the node: nothing is skipped silently, except nodes whose
outputs reach no graph output (listed in ``graph.meta["notes"]``).

Security: tensors stored in external files are refused; no path named in a model is opened.
"""
from .common import MIN_OPSET
from .converter import HANDLERS, SUPPORTED_OPS, from_onnx

__all__ = ["from_onnx", "SUPPORTED_OPS", "HANDLERS", "MIN_OPSET"]
