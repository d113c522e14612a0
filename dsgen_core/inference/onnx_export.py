"""Export an Ultralytics checkpoint to ONNX and describe an ONNX file: what a model artifact records."""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dsgen_core.errors import DsgenError
from dsgen_core.inference.ultralytics_env import import_ultralytics

if TYPE_CHECKING:
    import onnx

# Written by export_onnx: Ultralytics leaves no trace of the simplifier in the file, and a failed
# simplification is only a warning, so the info could not tell otherwise.
SIMPLIFIED_KEY = "dsgen_simplified_with"


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    opset: int  # of the default (ai.onnx) domain
    ir_version: int
    inputs: list[dict]  # {"name", "shape", "dtype"}; symbolic dimensions are strings
    outputs: list[dict]
    sha256: str
    size_bytes: int
    imgsz: int  # longest side of the model input
    names: dict[int, str]
    task: str
    compat: dict  # versions and settings a runtime needs to know; see read_onnx_info


def export_onnx(weights: Path, out_path: Path, *, imgsz: int, opset: int | None = None) -> OnnxInfo:
    """Export an Ultralytics ``.pt`` checkpoint to ``out_path``: fixed batch 1 and ``imgsz`` square
    input, simplified with onnxslim, on the CPU. ``opset`` defaults to Ultralytics' choice for the
    installed torch."""
    weights, out_path = Path(weights).resolve(), Path(out_path)
    if weights.suffix != ".pt":
        raise DsgenError(f"expected an Ultralytics .pt checkpoint, got {weights}")
    if not weights.is_file():
        raise DsgenError(f"checkpoint not found: {weights}")
    if out_path.is_dir():
        raise DsgenError(f"{out_path} is a folder; give the path of the .onnx file to write")
    import onnxslim

    ultralytics = import_ultralytics()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Ultralytics writes the .onnx next to the checkpoint it loaded; a private copy in the target's
    # folder keeps it from overwriting a neighbour and lets the result move into place in one rename.
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".dsgen-export-") as tmp:
        private = Path(tmp) / weights.name
        shutil.copyfile(weights, private)
        try:
            model = ultralytics.YOLO(str(private))
        except Exception as exc:  # torch.load and Ultralytics raise many unrelated types for a bad file
            raise DsgenError(f"cannot load checkpoint {weights}: {exc}") from exc
        stride = int(max(model.model.stride))
        if imgsz <= 0 or imgsz % stride:
            raise DsgenError(f"imgsz {imgsz} is not a positive multiple of the stride {stride} of {weights}")
        with _ultralytics_warnings() as warnings:
            try:
                exported = Path(model.export(format="onnx", simplify=True, imgsz=imgsz, dynamic=False,
                                             device="cpu", opset=opset))
            except AssertionError as exc:  # Ultralytics' argument checks, e.g. an opset below the model's minimum
                raise DsgenError(f"ONNX export of {weights} refused: {exc}") from exc
        failed = any("simplifier failure" in w for w in warnings)
        _set_metadata(exported, SIMPLIFIED_KEY, "" if failed else f"onnxslim {onnxslim.__version__}")
        os.replace(exported, out_path)
    return read_onnx_info(out_path)


def read_onnx_info(path: Path) -> OnnxInfo:
    """Describe an Ultralytics ONNX export, after checking that onnx and this onnxruntime load it.

    ``compat`` holds ``onnxruntime``/``onnx`` (the versions that checked it), ``producer``,
    ``providers`` (those ONNX Runtime loaded it with), ``dynamic`` (any symbolic dimension),
    ``simplified_with`` (``"onnxslim x.y"``, or None when unknown or it failed) and ``ultralytics``.
    """
    import onnx
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise DsgenError(f"ONNX file not found: {path}")
    data = path.read_bytes()
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf decode errors and onnx's checker errors share no base class
        raise DsgenError(f"{path} is not a valid ONNX model: {exc}") from exc
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's pybind errors share no base class narrower than Exception
        raise DsgenError(f"onnxruntime {ort.__version__} cannot load {path}: {exc}") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    if "names" not in meta or "imgsz" not in meta:
        raise DsgenError(f"{path} has no Ultralytics metadata (names, imgsz); export it with dsgen or Ultralytics")
    initializers = {t.name for t in model.graph.initializer}  # old exports list weights among the inputs
    inputs = [_tensor(v) for v in model.graph.input if v.name not in initializers]
    outputs = [_tensor(v) for v in model.graph.output]
    h, w = inputs[0]["shape"][2:]
    hw = (h, w) if isinstance(h, int) and isinstance(w, int) else tuple(ast.literal_eval(meta["imgsz"]))
    return OnnxInfo(
        path=path,
        opset=next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        ir_version=model.ir_version,
        inputs=inputs,
        outputs=outputs,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        imgsz=max(hw),
        names={int(k): str(v) for k, v in ast.literal_eval(meta["names"]).items()},
        task=meta.get("task", "detect"),
        compat={
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "providers": session.get_providers(),
            "dynamic": any(isinstance(d, str) for t in inputs + outputs for d in t["shape"]),
            "simplified_with": meta.get(SIMPLIFIED_KEY) or None,
            "ultralytics": meta.get("version"),
        },
    )


def _tensor(value: onnx.ValueInfoProto) -> dict:
    import onnx

    tensor = value.type.tensor_type
    return {
        "name": value.name,
        "shape": [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim],
        "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name,
    }


def _set_metadata(path: Path, key: str, value: str) -> None:
    import onnx

    model = onnx.load(str(path))
    model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


@contextmanager
def _ultralytics_warnings() -> Iterator[list[str]]:
    """Collect the warnings Ultralytics logs meanwhile (it reports some failures only that way)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("ultralytics")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
