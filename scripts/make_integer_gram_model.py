"""Write ``src/erasable/integer_gram.onnx``, the ONNX graph behind :mod:`erasable.integer_gram`.

Two inputs of the same n rows (values 0..127): ``left_unsigned`` (uint8, n x p) and ``right``
(int8, n x q), and one output ``product`` (int32, p x q) = ``left.T @ right``: a Transpose of the
uint8 operand and a ``MatMulInteger`` of it by the int8 one, the pairing ONNX Runtime's integer
kernels (MLAS: AMX and AVX-VNNI where the CPU has them) run fastest. :func:`~erasable.integer_gram.integer_gram`
calls it once per band of the upper triangle. Run it with the ``onnx`` package (in the ``dev``
extra) whenever the graph must change; the test suite checks that the shipped file is what this script writes.

    .venv/bin/python scripts/make_integer_gram_model.py
"""

from __future__ import annotations

from pathlib import Path

from onnx import TensorProto, helper

TARGET = Path(__file__).resolve().parents[1] / "src" / "erasable" / "integer_gram.onnx"


def integer_gram_model() -> bytes:
    """The serialized model (IR 7, opset 13: read by every ONNX Runtime release since 1.8)."""
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["left_unsigned"], ["columns"], perm=[1, 0]),
            helper.make_node("MatMulInteger", ["columns", "right"], ["product"]),
        ],
        "integer_product",
        [
            helper.make_tensor_value_info("right", TensorProto.INT8, ["n", "q"]),
            helper.make_tensor_value_info("left_unsigned", TensorProto.UINT8, ["n", "p"]),
        ],
        [helper.make_tensor_value_info("product", TensorProto.INT32, ["p", "q"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    model.producer_name = "erasable"
    return bytes(model.SerializeToString())


if __name__ == "__main__":
    TARGET.write_bytes(integer_gram_model())
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")
