"""Models over 2 GB: imported by mapping their weights, exported with a side file."""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper

from npuc.compiler.executor.interpreter import execute
from npuc.compiler.frontend.onnx_export import export_onnx
from npuc.compiler.frontend.onnx_import import import_onnx

ROWS, COLS = 560_000, 1024  # 2.29 GB of float32


def test_model_over_2gb_imports_runs_and_exports(tmp_path):
    data = tmp_path / "table.bin"
    with open(data, "wb") as f:  # sparse: zeros except a marked row
        f.truncate(ROWS * COLS * 4)
        f.seek(12345 * COLS * 4)
        f.write(np.arange(COLS, dtype=np.float32).tobytes())
    table = TensorProto(name="table", data_type=TensorProto.FLOAT, dims=[ROWS, COLS])
    table.data_location = TensorProto.EXTERNAL
    table.external_data.add(key="location", value="table.bin")
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [2])
    out = helper.make_tensor_value_info("emb", TensorProto.FLOAT, [2, COLS])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["emb"])], "big",
                          [ids], [out], [table]),
        opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, tmp_path / "big.onnx")
    g = import_onnx(str(tmp_path / "big.onnx"))
    assert g.constants["table"].const.nbytes > 2**31
    got = execute(g, {"ids": np.array([12345, 7], dtype=np.int64)})["emb"]
    np.testing.assert_array_equal(got[0], np.arange(COLS, dtype=np.float32))
    assert not got[1].any()
    os.makedirs(tmp_path / "out")
    export_onnx(g, tmp_path / "out" / "big.onnx")
    assert (tmp_path / "out" / "big.onnx.data").stat().st_size >= ROWS * COLS * 4
    again = import_onnx(str(tmp_path / "out" / "big.onnx"))
    np.testing.assert_array_equal(again.constants["table"].const[12345], got[0])
