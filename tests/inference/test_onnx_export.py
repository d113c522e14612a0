"""export_onnx and read_onnx_info on a real (tiny) trained model."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import onnx
import onnxruntime
import onnxslim
import pytest
from onnx import TensorProto, helper

from dsgen_core.errors import DsgenError
from dsgen_core.inference import OnnxInfo, export_onnx, read_onnx_info

from .conftest import IMGSZ, NAMES


def test_export_info_describes_the_file(tiny_onnx: OnnxInfo, tiny_weights: Path) -> None:
    data = tiny_onnx.path.read_bytes()
    assert tiny_onnx.path.name == "tiny.onnx"
    assert tiny_onnx.sha256 == hashlib.sha256(data).hexdigest()
    assert tiny_onnx.size_bytes == len(data)
    model = onnx.load(str(tiny_onnx.path))
    assert tiny_onnx.opset == next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 11
    assert tiny_onnx.ir_version == model.ir_version <= 10  # Ultralytics caps it for onnxruntime
    assert tiny_onnx.inputs == [{"name": "images", "shape": [1, 3, IMGSZ, IMGSZ], "dtype": "float32"}]
    # yolov8 at 64 px: (8x8 + 4x4 + 2x2) anchors, each with 4 box values and one score per class
    assert tiny_onnx.outputs == [{"name": "output0", "shape": [1, 4 + len(NAMES), 84], "dtype": "float32"}]
    assert tiny_onnx.imgsz == IMGSZ
    assert tiny_onnx.names == NAMES
    assert tiny_onnx.task == "detect"
    assert tiny_onnx.compat["onnxruntime"] == onnxruntime.__version__
    assert tiny_onnx.compat["onnx"] == onnx.__version__
    assert tiny_onnx.compat["producer"].startswith("pytorch ")
    assert tiny_onnx.compat["providers"] == ["CPUExecutionProvider"]
    assert tiny_onnx.compat["dynamic"] is False
    assert tiny_onnx.compat["simplified_with"] == f"onnxslim {onnxslim.__version__}"
    assert read_onnx_info(tiny_onnx.path) == tiny_onnx
    # Ultralytics exports next to the checkpoint it loads; nothing may land beside ours or stay behind.
    assert sorted(p.name for p in tiny_weights.parent.iterdir()) == ["best.pt", "last.pt"]
    assert [p.name for p in tiny_onnx.path.parent.iterdir()] == ["tiny.onnx"]


def test_explicit_opset(tiny_weights: Path, tmp_path: Path) -> None:
    info = export_onnx(tiny_weights, tmp_path / "sub" / "m.onnx", imgsz=IMGSZ, opset=13)
    assert info.opset == 13
    assert info.path == tmp_path / "sub" / "m.onnx"


def test_export_refuses_bad_arguments(tiny_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(DsgenError, match="nope.pt"):
        export_onnx(tmp_path / "nope.pt", tmp_path / "m.onnx", imgsz=IMGSZ)
    with pytest.raises(DsgenError, match=r"model\.yaml"):
        export_onnx(tmp_path / "model.yaml", tmp_path / "m.onnx", imgsz=IMGSZ)
    with pytest.raises(DsgenError, match="imgsz 50 is not a positive multiple of the stride 32"):
        export_onnx(tiny_weights, tmp_path / "m.onnx", imgsz=50)
    with pytest.raises(DsgenError, match="refused: ONNX export requires opset>=9"):
        export_onnx(tiny_weights, tmp_path / "m.onnx", imgsz=IMGSZ, opset=7)
    with pytest.raises(DsgenError, match="is a folder"):
        export_onnx(tiny_weights, tmp_path, imgsz=IMGSZ)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(DsgenError, match="broken.pt"):
        export_onnx(broken, tmp_path / "m.onnx", imgsz=IMGSZ)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pt"]  # no output, no leftover temporary folder


def test_read_onnx_info_names_a_missing_corrupt_or_foreign_file(tiny_onnx: OnnxInfo, tmp_path: Path) -> None:
    with pytest.raises(DsgenError, match="missing.onnx"):
        read_onnx_info(tmp_path / "missing.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny_onnx.path.read_bytes()[:5000])
    with pytest.raises(DsgenError, match="truncated.onnx"):
        read_onnx_info(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(DsgenError, match="garbage.onnx"):
        read_onnx_info(garbage)
    foreign = tmp_path / "identity.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(foreign))
    with pytest.raises(DsgenError, match=r"identity\.onnx has no Ultralytics metadata"):
        read_onnx_info(foreign)


def test_export_overwrites_an_existing_target(tiny_weights: Path, tiny_onnx: OnnxInfo, tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    shutil.copyfile(tiny_weights, target)  # anything stale
    info = export_onnx(tiny_weights, target, imgsz=IMGSZ)
    assert info.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert read_onnx_info(target).names == NAMES
