"""Image encoders loaded from weights files the tests write: random weights of the true architectures.

Nothing is trained or downloaded. DINOv2-base (timm) is saved as .safetensors and as a nested,
half-precision .pth; CLIP ViT-B-32 (open_clip) as a whole-model and as an image-tower-only .pth;
an untrained yolov8n is saved the way Ultralytics saves checkpoints; ONNX encoders are written
with onnx.helper. Each is loaded through dsgen's encoders and checked against the library's own
model, for shapes, unit norm, determinism, crops, and every refusal a wrong file must get.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dsgen_core.embeddings.encoders import (
    ARCHITECTURES,
    BackboneEncoder,
    OnnxEncoder,
    OpenClipEncoder,
    TimmEncoder,
    build_encoder,
    encoder_from_spec,
)
from dsgen_core.embeddings.encoders._common import padded_crop_box
from dsgen_core.errors import DsgenError

NETGUARD = Path(__file__).parents[1] / "training" / "netguard"


def one_line_error(excinfo: pytest.ExceptionInfo[DsgenError], *parts: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


def shapes_image(seed: int, size: tuple[int, int] = (200, 150)) -> Image.Image:
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(4):
        x, y = rng.integers(0, size[0] - 40), rng.integers(0, size[1] - 40)
        draw.rectangle((int(x), int(y), int(x) + 35, int(y) + 30), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return im


def assert_unit(v: np.ndarray, d: int) -> None:
    assert v.dtype == np.float32 and v.ndim == 2 and v.shape[1] == d
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def randomised(model: Any, seed: int) -> Any:
    """A model built on the meta device, given random N(0, 0.02) tensors: the true architecture's
    shapes without the seconds a ViT's own initialisation takes."""
    import torch

    model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.normal_(0, 0.02, generator=gen)
    return model.eval()


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [shapes_image(0), shapes_image(1, (120, 160))]


@dataclass
class VitFiles:
    safetensors: Path
    pth: Path  # nested under "model", half precision
    small: Path  # dinov2-small weights
    model: Any  # the timm model the files were saved from


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> VitFiles:
    import timm
    import torch
    from safetensors.torch import save_file

    tmp = tmp_path_factory.mktemp("vit")
    with torch.device("meta"):
        model = randomised(timm.create_model("vit_base_patch14_dinov2", pretrained=False, num_classes=0), 0)
        small = randomised(timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0), 1)
    state = model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp / "dinov2-base.safetensors")
    torch.save({"epoch": 3, "model": {k: v.half() for k, v in state.items()}}, tmp / "dinov2-base.pth")
    torch.save(small.state_dict(), tmp / "dinov2-small.pth")
    return VitFiles(tmp / "dinov2-base.safetensors", tmp / "dinov2-base.pth", tmp / "dinov2-small.pth", model)


@pytest.fixture(scope="module")
def dino(vit: VitFiles) -> TimmEncoder:
    """At 112 px (64 patches): a quarter of the default 224's work, for the tests that run many crops."""
    return TimmEncoder(vit.safetensors, image_size=112, batch_size=4)


@dataclass
class ClipFiles:
    full: Path
    visual: Path
    model: Any


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> ClipFiles:
    import open_clip
    import torch

    tmp = tmp_path_factory.mktemp("clip")
    with torch.device("meta"):
        model = randomised(open_clip.create_model("ViT-B-32", pretrained=None, device="meta"), 2)
    # Half precision, like OpenAI's released files (and half the bytes to write and hash).
    torch.save({k: v.half() for k, v in model.state_dict().items()}, tmp / "clip-vit-b32.pth")
    torch.save({k: v.half() for k, v in model.visual.state_dict().items()}, tmp / "clip-vit-b32-visual.pth")
    return ClipFiles(tmp / "clip-vit-b32.pth", tmp / "clip-vit-b32-visual.pth", model)


@pytest.fixture(scope="module")
def yolo_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained yolov8n (3 classes) saved as Ultralytics saves a trained one, training size 96 recorded."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("yolo") / "m1-best.pt"
    yolo = YOLO("yolov8n.yaml")  # built from its definition: nothing to download
    yolo.ckpt = {"train_args": {"imgsz": 96, "task": "detect"}}
    yolo.save(path)
    return path


@pytest.fixture(scope="module")
def backbone(yolo_ckpt: Path) -> BackboneEncoder:
    return BackboneEncoder(yolo_ckpt, model_version="m1", batch_size=2)


def onnx_model(path: Path, *, input_shape: list[Any], out_pool: bool = True, dim: int = 8) -> Path:
    """A small conv encoder: Conv(3->dim, 3x3, stride 2) -> Relu [-> GlobalAveragePool -> Flatten]."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(dim, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r" if out_pool else "y"])]
    if out_pool:
        nodes += [helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["y"])]
    out_shape: list[Any] = ["N", dim] if out_pool else ["N", dim, None, None]
    graph = helper.make_graph(nodes, "enc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], [weight])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


# --- DINOv2 through timm -------------------------------------------------------------------------


def timm_reference(vit: VitFiles, x: np.ndarray) -> np.ndarray:
    """timm's own model on the same input, its position embeddings resampled by timm itself."""
    import torch

    model = copy.deepcopy(vit.model)
    model.set_input_size(img_size=x.shape[-1])
    with torch.inference_mode():
        ref = model.forward_head(model.forward_features(torch.from_numpy(x)), pre_logits=True).numpy()
    return ref / np.linalg.norm(ref, axis=1, keepdims=True)


def test_dinov2_from_safetensors_matches_timm(dino: TimmEncoder, vit: VitFiles, images: list[Image.Image]) -> None:
    assert dino.spec.dimension == 768 and dino.spec.encoder == "timm" and dino.spec.model_name == "dinov2-base"
    assert dino.spec.artifact_sha256 == hashlib.sha256(vit.safetensors.read_bytes()).hexdigest()
    assert dino.spec.crop_policy == "box+pad0.1" and dino.spec.preprocessing["size"] == 112
    vecs = dino.embed_images(images)
    assert_unit(vecs, 768)
    np.testing.assert_array_equal(vecs, dino.embed_images(images))  # deterministic
    x = np.empty((2, 3, 112, 112), np.float32)
    for i, im in enumerate(images):
        dino._tensor(im, x[i])
    assert (np.sum(vecs * timm_reference(vit, x), axis=1) > 0.9999).all()


def test_dinov2_nested_half_precision_pth_at_the_default_size(vit: VitFiles, images: list[Image.Image]) -> None:
    enc = TimmEncoder(vit.pth)  # {"epoch": .., "model": {...float16...}}
    assert enc.spec.preprocessing["size"] == 224 and enc.spec.dimension == 768
    assert str(enc.model.pos_embed.dtype) == "torch.float32" and enc.model.pos_embed.shape[1] == 16 * 16 + 1
    vec = enc.embed_images(images[:1])
    assert_unit(vec, 768)
    x = np.empty((1, 3, 224, 224), np.float32)
    enc._tensor(images[0], x[0])
    assert float(vec[0] @ timm_reference(vit, x)[0]) > 0.999  # the .pth holds the float32 tensors rounded to float16


def test_box_embedding_is_the_padded_crop(dino: TimmEncoder, images: list[Image.Image]) -> None:
    # Two boxes in the first image (then degenerate ones: empty, past the border, outside), none in the second.
    boxes = [np.array([[10, 20, 50, 40], [0, 0, 30, 30], [50, 50, 0, 0], [190, 140, 30, 30], [-40, -40, 20, 20]], float),
             np.empty((0, 4))]
    per_image = dino.embed_boxes(images, boxes)
    assert [v.shape for v in per_image] == [(5, 768), (0, 768)]
    assert_unit(per_image[0], 768)
    assert padded_crop_box(boxes[0][0], 0.1, 200, 150) == (5, 16, 65, 64)  # 10 % of w and h on each side
    assert padded_crop_box(boxes[0][1], 0.1, 200, 150) == (0, 0, 33, 33)  # clipped at the border
    crops = [images[0].crop((5, 16, 65, 64)), images[0].crop((0, 0, 33, 33))]
    np.testing.assert_allclose(per_image[0][:2], dino.embed_images(crops), atol=2e-5)


def test_dinov2_small_weights_given_as_base_are_refused(vit: VitFiles) -> None:
    with pytest.raises(DsgenError) as e:
        TimmEncoder(vit.small, arch="dinov2-base")
    msg = one_line_error(e, str(vit.small), "dinov2-base", "tensors have other shapes", "is (", "in the file",
                         "the file fits dinov2-small")
    wrong, total = map(int, re.search(r"(\d+) of (\d+) tensors", msg).groups())  # type: ignore[union-attr]
    assert total == len(vit.model.state_dict()) and 100 < wrong <= total
    assert "cls_token is (1, 1, 384) in the file, (1, 1, 768) in dinov2-base" in msg


def test_missing_and_unexpected_keys_are_counted(vit: VitFiles, tmp_path: Path) -> None:
    import torch

    state = torch.load(vit.small, weights_only=True)
    del state["norm.bias"]
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(DsgenError) as e:
        TimmEncoder(tmp_path / "partial.pth", arch="dinov2-small")
    one_line_error(e, str(tmp_path / "partial.pth"), "1 missing (first: norm.bias)", "1 unexpected (first: extra.weight)")


def test_unknown_architecture_lists_the_known_ones(vit: VitFiles) -> None:
    with pytest.raises(DsgenError) as e:
        TimmEncoder(vit.safetensors, arch="dinov3-base")
    one_line_error(e, "dinov3-base", "dinov2-small, dinov2-base, dinov2-large")
    with pytest.raises(DsgenError) as e:
        build_encoder("open_clip", weights=vit.safetensors, arch="vit-b32")
    one_line_error(e, "clip-vit-b32", "clip-vit-l14")


@pytest.mark.parametrize("name, content", [("garbage.pth", b"not a pickle at all"), ("garbage.safetensors", b"\x00" * 64),
                                           ("empty.pt", b"")])
def test_unreadable_weights_files(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DsgenError) as e:
        TimmEncoder(path)
    one_line_error(e, str(path), "not a")


def test_missing_weights_file(tmp_path: Path) -> None:
    for kind in ("model", "timm", "open_clip", "onnx"):
        with pytest.raises(DsgenError) as e:
            build_encoder(kind, weights=tmp_path / "nope.bin")
        one_line_error(e, str(tmp_path / "nope.bin"), "not found")


def test_pickled_objects_are_not_read_as_weights(yolo_ckpt: Path) -> None:
    with pytest.raises(DsgenError) as e:
        TimmEncoder(yolo_ckpt)
    one_line_error(e, str(yolo_ckpt), "pickled Python objects", "kind 'model'")


def test_image_size_must_fit_the_patch(vit: VitFiles) -> None:
    with pytest.raises(DsgenError) as e:
        TimmEncoder(vit.safetensors, image_size=200)
    one_line_error(e, "200", "patch size 14")


# --- CLIP through open_clip ----------------------------------------------------------------------


def test_clip_full_and_visual_only_state_dicts(clip: ClipFiles, images: list[Image.Image]) -> None:
    import torch

    full = OpenClipEncoder(clip.full, batch_size=2)
    assert full.spec.dimension == 512 and full.spec.encoder == "open_clip" and full.spec.model_name == "clip-vit-b32"
    vecs = full.embed_images(images)
    assert_unit(vecs, 512)
    np.testing.assert_allclose(full.embed_images(images[1:]), vecs[1:], atol=1e-6)  # again, alone in its batch
    x = np.empty((1, 3, 224, 224), np.float32)
    full._tensor(images[1], x[0])
    with torch.inference_mode():
        ref = clip.model.encode_image(torch.from_numpy(x), normalize=True).numpy()[0]
    assert float(vecs[1] @ ref) > 0.999  # the file holds the model's tensors rounded to float16
    visual = OpenClipEncoder(clip.visual)
    np.testing.assert_allclose(visual.embed_images(images[:1]), vecs[:1], atol=1e-5)
    box = np.array([[20, 30, 60, 50]], float)
    crop = images[0].crop(padded_crop_box(box[0], 0.1, *images[0].size))
    np.testing.assert_allclose(full.embed_boxes(images[:1], [box])[0], full.embed_images([crop]), atol=2e-5)


def test_clip_given_dinov2_weights_names_the_kind(vit: VitFiles) -> None:
    with pytest.raises(DsgenError) as e:
        OpenClipEncoder(vit.small)
    one_line_error(e, str(vit.small), "clip-vit-b32", "kind timm")


# --- the default encoder: a dsgen model version's backbone --------------------------------------


def test_backbone_encoder_spec_and_vectors(backbone: BackboneEncoder, yolo_ckpt: Path, images: list[Image.Image]) -> None:
    spec = backbone.spec
    assert (spec.encoder, spec.model_name, spec.model_version) == ("model", "dsgen-backbone:m1", "m1")
    assert spec.artifact_sha256 == hashlib.sha256(yolo_ckpt.read_bytes()).hexdigest()
    assert spec.preprocessing["imgsz"] == 96  # the training size recorded in the checkpoint
    assert spec.crop_policy.startswith("roi-align")
    assert spec.dimension == 2 * sum(spec.preprocessing["channels"])
    vecs = backbone.embed_images(images)
    assert_unit(vecs, spec.dimension)
    np.testing.assert_array_equal(vecs, backbone.embed_images(images))
    boxes = [np.array([[10, 20, 50, 40], [100, 60, 35, 30], [0, 0, 0, 0]], float), np.empty((0, 4)),
             np.array([[5, 5, 100, 100]], float)]
    three = [*images, images[0].rotate(90, expand=True)]
    per_image = backbone.embed_boxes(three, boxes)
    assert [v.shape[0] for v in per_image] == [3, 0, 1]
    for v in per_image:
        if len(v):
            assert_unit(v, spec.dimension)
    # Batching does not change a vector: one image at a time gives the same.
    single = BackboneEncoder(yolo_ckpt, model_version="m1", batch_size=1)
    for got, want in zip(single.embed_boxes(three, boxes), per_image, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_backbone_other_size_and_refusals(yolo_ckpt: Path, vit: VitFiles, images: list[Image.Image], tmp_path: Path) -> None:
    enc = BackboneEncoder(yolo_ckpt, imgsz=64, head=False, progress=True)  # a tqdm bar on stderr
    assert enc.spec.model_version.startswith("sha256:") and enc.spec.preprocessing["imgsz"] == 64
    assert_unit(enc.embed_boxes(images[:1], [np.array([[10, 10, 40, 40]])])[0], enc.spec.dimension)
    with pytest.raises(DsgenError) as e:
        BackboneEncoder(yolo_ckpt, imgsz=100)
    one_line_error(e, "imgsz 100", "stride 32", str(yolo_ckpt))
    with pytest.raises(DsgenError) as e:
        BackboneEncoder(vit.pth)
    one_line_error(e, str(vit.pth), "not an Ultralytics model checkpoint")
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04junk")
    with pytest.raises(DsgenError) as e:
        BackboneEncoder(tmp_path / "junk.pt")
    one_line_error(e, "junk.pt", "not an Ultralytics model checkpoint")


def test_bad_boxes_are_refused(backbone: BackboneEncoder, images: list[Image.Image]) -> None:
    with pytest.raises(DsgenError) as e:
        backbone.embed_boxes(images, [np.zeros((1, 4))])
    one_line_error(e, "2 images but 1 box arrays")
    with pytest.raises(DsgenError) as e:
        backbone.embed_boxes(images[:1], [np.zeros((2, 3))])
    one_line_error(e, "shape (2, 3)", "(k, 4)")
    with pytest.raises(DsgenError) as e:
        backbone.embed_boxes(images[:1], [np.array([[1, 2, np.nan, 4]])])
    one_line_error(e, "non-finite")
    with pytest.raises(DsgenError) as e:
        backbone.embed_images(images[0])  # type: ignore[arg-type]
    one_line_error(e, "wrap a single image in a list")


# --- ONNX ----------------------------------------------------------------------------------------


def test_onnx_encoder_static_dynamic_and_fixed_batch(tmp_path: Path, images: list[Image.Image]) -> None:
    static = OnnxEncoder(onnx_model(tmp_path / "static.onnx", input_shape=["N", 3, 32, 32]))
    assert static.spec.dimension == 8 and static.input_hw == (32, 32) and static.spec.model_name == "onnx:static.onnx"
    vecs = static.embed_images(images)
    assert_unit(vecs, 8)
    box = np.array([[30, 40, 50, 60]], float)
    crop = images[0].crop(padded_crop_box(box[0], 0.1, *images[0].size))
    np.testing.assert_allclose(static.embed_boxes(images[:1], [box])[0], static.embed_images([crop]), atol=1e-6)

    dynamic = OnnxEncoder(onnx_model(tmp_path / "dynamic.onnx", input_shape=["N", 3, "H", "W"], out_pool=False),
                          image_size=48, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert dynamic.spec.dimension == 8 and dynamic.input_hw == (48, 48)  # (N, 8, h, w) mean-pooled; width from a dummy run
    assert dynamic.spec.preprocessing["mean"] == [0.5, 0.5, 0.5]
    assert_unit(dynamic.embed_images(images), 8)

    fixed = OnnxEncoder(onnx_model(tmp_path / "fixed.onnx", input_shape=[1, 3, 32, 32]), batch_size=3)
    np.testing.assert_allclose(fixed.embed_images([*images, images[0]]), np.vstack([vecs, vecs[:1]]), atol=1e-6)

    # Rebuilt from its spec (mean/std and size read back from it), under its recorded name after a move.
    (tmp_path / "moved.onnx").hardlink_to(tmp_path / "dynamic.onnx")
    again = encoder_from_spec(dynamic.spec, tmp_path / "moved.onnx")
    assert again.spec == replace(dynamic.spec, weights_uri=str((tmp_path / "moved.onnx").resolve()))
    np.testing.assert_array_equal(again.embed_images(images), dynamic.embed_images(images))


def test_onnx_refusals(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper, save

    w = numpy_helper.from_array(np.ones((10, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "tabular",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "tabular.onnx")
    with pytest.raises(DsgenError) as e:
        OnnxEncoder(tmp_path / "tabular.onnx")
    one_line_error(e, "tabular.onnx", "not an image encoder", "rank 2", "(N, 3, H, W)")
    (tmp_path / "text.onnx").write_text("hello")
    with pytest.raises(DsgenError) as e:
        OnnxEncoder(tmp_path / "text.onnx")
    one_line_error(e, "text.onnx", "not an ONNX model")
    with pytest.raises(DsgenError) as e:
        OnnxEncoder(onnx_model(tmp_path / "static.onnx", input_shape=["N", 3, 32, 32]), image_size=64)
    one_line_error(e, "fixed at 32x32")


# --- factory and rebuilding from a spec ---------------------------------------------------------


def test_architectures_and_factory_refusals(yolo_ckpt: Path) -> None:
    assert "dinov2-base" in ARCHITECTURES["timm"] and "clip-vit-b32" in ARCHITECTURES["open_clip"]
    assert set(ARCHITECTURES) == {"model", "timm", "open_clip", "onnx"}
    with pytest.raises(DsgenError) as e:
        build_encoder("resnet", weights=yolo_ckpt)
    one_line_error(e, "unknown encoder kind 'resnet'", "model, timm, open_clip, onnx")
    with pytest.raises(DsgenError) as e:
        build_encoder("model", weights=yolo_ckpt, arch="yolov8n")
    one_line_error(e, "reads its architecture from the weights file")


def test_encoder_from_spec_rebuilds_or_refuses(dino: TimmEncoder, backbone: BackboneEncoder, vit: VitFiles,
                                               yolo_ckpt: Path, images: list[Image.Image], tmp_path: Path) -> None:
    again = encoder_from_spec(backbone.spec, yolo_ckpt)
    assert again.spec == backbone.spec and again.spec.fingerprint() == backbone.spec.fingerprint()
    np.testing.assert_array_equal(again.embed_images(images), backbone.embed_images(images))
    small = TimmEncoder(vit.small, arch="dinov2-small", image_size=56)
    moved = tmp_path / "moved.pth"
    moved.hardlink_to(vit.small)  # another path, same bytes: the same encoder
    rebuilt = encoder_from_spec(small.spec, moved, batch_size=1)
    assert isinstance(rebuilt, TimmEncoder) and rebuilt.spec.fingerprint() == small.spec.fingerprint()
    assert rebuilt.spec.dimension == 384 and rebuilt.input_hw == (56, 56)
    with pytest.raises(DsgenError) as e:
        encoder_from_spec(dino.spec, vit.pth)
    one_line_error(e, str(vit.pth), "sha256", "differs", "dinov2-base")
    with pytest.raises(DsgenError) as e:
        encoder_from_spec(replace(backbone.spec, dimension=768), yolo_ckpt)
    one_line_error(e, str(yolo_ckpt), f"{backbone.spec.dimension}-d", "records 768-d")
    changed = replace(backbone.spec, preprocessing={**backbone.spec.preprocessing, "letterbox": "stretch"})
    with pytest.raises(DsgenError) as e:
        encoder_from_spec(changed, yolo_ckpt)
    one_line_error(e, "preprocessing differs")


def test_building_encoders_touches_no_network(vit: VitFiles, yolo_ckpt: Path, tmp_path: Path) -> None:
    """Encoders built in a fresh process (imports included) where any non-local connection fails and is
    logged, then yolov8n from its YAML as the fixtures build it. CLIP is imported but not built: its
    loading is timm's, without the 175 MB file to read."""
    onnx_path = onnx_model(tmp_path / "enc.onnx", input_shape=["N", 3, 32, 32])
    log = tmp_path / "net.log"
    script = textwrap.dedent(f"""
        from pathlib import Path
        import open_clip
        from dsgen_core.embeddings.encoders import build_encoder
        for kind, path, arch in [("model", {str(yolo_ckpt)!r}, None), ("timm", {str(vit.small)!r}, "dinov2-small"),
                                 ("onnx", {str(onnx_path)!r}, None)]:
            build_encoder(kind, weights=Path(path), arch=arch)
        from ultralytics import YOLO  # imported offline by the model encoder above
        YOLO("yolov8n.yaml")  # what the yolo_ckpt fixture builds: from its definition, nothing fetched
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(NETGUARD), os.environ.get("PYTHONPATH", "")]),
           "DSGEN_NETGUARD_LOG": str(log)}
    for var in ("YOLO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # the encoders must set these themselves
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
    assert not log.exists() or not log.read_text().strip(), log.read_text()
