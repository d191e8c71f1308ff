"""The ONNX operators the Hailo Dataflow Compiler's ONNX parser maps onto device layers.

A device-part ONNX whose every node is in :data:`HAILO_SUPPORTED_OPS` has no operator the parser is known
to reject; anything else (``Round``, ``ArgMax``, casts to integers) belongs to the host part. The list is
deliberately short: it holds what Hailo's public documents name, each entry with where it is named, not
every operator the parser may accept. Sources:

- [UG] Hailo Dataflow Compiler User Guide, release 3.30.0, section 5.5 "Supported Layers"
  (public copy: https://www.scribd.com/document/850794798/hailo-dataflow-compiler-v3-30-0-user-guide)
- [PB] Hailo Dataflow Compiler Product Brief, release 3.7.0, section 2.2 "ONNX Parser" and section 3
  "Supported layers" (3.1 Convolution, 3.2 Max Pooling, 3.3 Dense, 3.4 Average Pooling, 3.5 Concat,
  3.6 Deconvolution, 3.7 Depthwise Convolution, ...)
  (public copy: https://www.readkong.com/page/hailo-dataflow-compiler-product-brief-release-3-7-0-7-2267727)
- [CROP] Hailo community, "Handling Unsupported Operations with ONNXRuntime": unsupported tails are cut
  off with --end-node-names and run on the host
  (https://community.hailo.ai/t/handling-unsupported-operations-with-onnxruntime/17956)

numpy-free and torch-free: the hailo checks import it on a device.
"""

from __future__ import annotations

from collections.abc import Iterable

HAILO_SUPPORTED_OPS: frozenset[str] = frozenset(
    {
        "Conv",  # [PB] 3.1 Convolution, 3.7 Depthwise Convolution (group == channels); [UG] 5.5
        "ConvTranspose",  # [PB] 3.6 Deconvolution; [UG] 5.5
        "MaxPool",  # [PB] 3.2 Max Pooling; [UG] 5.5
        "AveragePool",  # [PB] 3.4 Average Pooling; [UG] 5.5
        "GlobalAveragePool",  # [PB] 3.4 Average Pooling (global); [UG] 5.5
        "ReduceMean",  # [UG] 5.5, global average pooling written as a mean over H, W
        "Gemm",  # [PB] 3.3 Dense; [UG] 5.5
        "MatMul",  # [PB] 3.3 Dense (with a constant weight); [UG] 5.5
        "Concat",  # [PB] 3.5 Concat; [UG] 5.5
        "BatchNormalization",  # [PB] 2.2 ONNX Parser (folded into the preceding layer); [UG] 5.5
        "Relu",  # [UG] 5.5 activations
        "LeakyRelu",  # [UG] 5.5 activations
        "PRelu",  # [UG] 5.5 activations
        "Sigmoid",  # [UG] 5.5 activations
        "Tanh",  # [UG] 5.5 activations
        "Elu",  # [UG] 5.5 activations
        "Exp",  # [UG] 5.5 activations
        "Clip",  # [UG] 5.5 activations (ReLU6 / bounded ReLU)
        "Softmax",  # [UG] 5.5 (softmax as the network's last layer)
        "Add",  # [UG] 5.5 elementwise add, and bias / constant add
        "Sub",  # [UG] 5.5 elementwise sub, and constant subtraction
        "Mul",  # [UG] 5.5 elementwise mult, and constant scaling
        "Div",  # [UG] 5.5 division by a constant (normalization)
        "Flatten",  # [PB] 2.2 ONNX Parser (before a Dense layer); [UG] 5.5
        "Reshape",  # [PB] 2.2 ONNX Parser (before a Dense layer); [UG] 5.5
        "Transpose",  # [UG] 5.5 (as part of a supported reshape pattern)
        "Pad",  # [PB] 2.4 Supported padding schemes; [UG] 5.5
        "Resize",  # [UG] 5.5 resize (nearest neighbour, bilinear)
        "Slice",  # [UG] 5.5 slice (features and spatial)
        "Split",  # [UG] 5.5 feature split
        "Squeeze",  # [UG] 5.5 (as part of a supported reshape pattern)
        "Unsqueeze",  # [UG] 5.5 (as part of a supported reshape pattern)
        "Identity",  # [UG] 5.5 (removed by the parser)
        "Dropout",  # [UG] 5.5 (inference no-op, removed by the parser)
        "Constant",  # [PB] 2.2 ONNX Parser (constants feed the layers above)
    }
)

# Operators the host runs after the device part ([CROP]): integer tails a quantized device cannot express.
HOST_ONLY_OPS: frozenset[str] = frozenset({"Round", "ArgMax", "ArgMin", "Cast", "Floor", "Ceil"})


def unsupported_ops(op_types: Iterable[str]) -> list[str]:
    """The sorted, distinct operator types not in :data:`HAILO_SUPPORTED_OPS`."""
    return sorted({op for op in op_types if op not in HAILO_SUPPORTED_OPS})
