"""Write ``src/erasable/integer_gram.onnx``, the ONNX graph behind :mod:`erasable.integer_gram`.

Two inputs, the same rows (n x d, values 0..127) as ``rows`` (int8) and ``rows_unsigned``
(uint8: the same bytes), and one output ``gram`` (int32, d x d) = ``rows.T @ rows``: a
Transpose of the uint8 view and a ``MatMulInteger`` of it by the int8 one, the pairing ONNX
Runtime's integer kernels (MLAS: AMX and AVX-VNNI where the CPU has them) run fastest. Run it with the ``onnx``
package (in the ``dev`` extra) whenever the graph must change; the test suite checks that the
shipped file is what this script writes.

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
            helper.make_node("Transpose", ["rows_unsigned"], ["columns"], perm=[1, 0]),
            helper.make_node("MatMulInteger", ["columns", "rows"], ["gram"]),
        ],
        "integer_gram",
        [
            helper.make_tensor_value_info("rows", TensorProto.INT8, ["n", "d"]),
            helper.make_tensor_value_info("rows_unsigned", TensorProto.UINT8, ["n", "d"]),
        ],
        [helper.make_tensor_value_info("gram", TensorProto.INT32, ["d", "d"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    model.producer_name = "erasable"
    return bytes(model.SerializeToString())


if __name__ == "__main__":
    TARGET.write_bytes(integer_gram_model())
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")
