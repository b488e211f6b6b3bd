"""int8: ONNX Runtime's static quantization of an exported model.onnx, held to the float graph.

QDQ, per-channel signed weights, unsigned activations, calibrated on training faces of every source.
Only the backbone is quantized: from the global pooling on (the age head, the temperature, the
smoothing, an ensemble's mean) the graph stays float, since a quantized logit moves every
probability. The int8 graph is served only where its parity passed (PARITY): each source's
validation MAE moves by at most 0.05 and its interval coverage by at most one point. Attempts are
tried in a fixed order, the first that passes is kept; none passing keeps the model float. What
loses most is the first layers (3.2.0's MobileNetV2 on AAF's validation faces: every convolution
int8 moves an age by 0.95 years on average, its first two float 0.61, its first six 0.45), so the
later attempts keep more of them float.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from app.model.distribution import INTERVAL_MASS, covered
from app.model.model_dir import CARD, INT8, ONNX, onnx_session, read_card
from model_training.dataset import DEFAULT_DATA_ROOT, DEFAULT_MANIFEST, Face, read_manifest
from model_training.evaluate import load_chips

PARITY = {"mae": 0.05, "interval_coverage": 0.01}  # largest change per source for int8 to be served
CALIBRATION_FACES = 300  # training faces, split evenly among the sources
PARITY_FACES = 1000  # validation faces per source (all of them where a source has fewer)
POOLING = ("GlobalAveragePool", "ReduceMean")
ATTEMPTS = (  # in order: the first that passes is kept
    {"calibration": "minmax", "float_convs": 0},
    {"calibration": "minmax", "float_convs": 2},  # MobileNetV2's stem and first depthwise convolution
    {"calibration": "minmax", "float_convs": 6},
    {"calibration": "percentile", "float_convs": 6},
)


def calibration_faces(manifest: Path, count: int = CALIBRATION_FACES, seed: int = 0) -> list[Face]:
    """`count` training faces, the same share from each source, drawn with a fixed seed."""
    faces = read_manifest(manifest, "train")
    sources = sorted({f.source for f in faces})
    rng = random.Random(seed)
    per_source = count // len(sources)
    return [f for s in sources for f in rng.sample([f for f in faces if f.source == s], per_source)]


def parity_faces(manifest: Path, count: int = PARITY_FACES, seed: int = 0) -> list[Face]:
    """Up to `count` validation faces of each source, drawn with a fixed seed."""
    faces = read_manifest(manifest, "val")
    rng = random.Random(seed)
    out: list[Face] = []
    for source in sorted({f.source for f in faces}):
        own = [f for f in faces if f.source == source]
        out += rng.sample(own, min(count, len(own)))
    return out


def float_only_nodes(model: onnx.ModelProto, float_convs: int) -> list[str]:
    """Names of the nodes kept float: every pooling node and all that depends on it (the head and
    what follows), and the first `float_convs` convolutions of each network (counted from the image)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    keep: set[str] = set()
    todo = [n for n in model.graph.node if n.op_type in POOLING]
    while todo:
        node = todo.pop()
        if node.name in keep:
            continue
        keep.add(node.name)
        todo += [c for out in node.output for c in consumers.get(out, [])]
    depth: dict[str, int] = {model.graph.input[0].name: 0}  # convolutions on the way from the image
    for node in model.graph.node:  # ONNX lists nodes in topological order
        before = max((depth[i] for i in node.input if i in depth), default=None)
        if before is None:
            continue
        own = before + (node.op_type == "Conv")
        if node.op_type == "Conv" and own <= float_convs:
            keep.add(node.name)
        for out in node.output:
            depth[out] = own
    return sorted(keep)


class _Faces:
    """ONNX Runtime's CalibrationDataReader over preloaded inputs, one at a time (its histogram
    calibrators need batches of one shape)."""

    def __init__(self, images: np.ndarray, batch: int = 1) -> None:
        self._batches = iter([{"image": images[i : i + batch]} for i in range(0, len(images), batch)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def prepared(float_path: Path, out_path: Path) -> onnx.ModelProto:
    """The float graph as quantization takes it (batch norms folded into the convolutions, shapes
    inferred), written to `out_path` and returned: what float_only_nodes names nodes of."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(float_path), str(out_path), skip_symbolic_shape=True)
    return onnx.load(str(out_path))


def quantized(
    prepared_path: Path, out_path: Path, images: np.ndarray, calibration: str, float_nodes: list[str]
) -> None:
    """Write the int8 graph of a prepared graph to `out_path`, calibrated on `images`, the nodes
    named in `float_nodes` kept float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[calibration]
    quantize_static(
        str(prepared_path),
        str(out_path),
        _Faces(images),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=method,
        nodes_to_exclude=float_nodes,
        extra_options={"CalibTensorRangeSymmetric": False},
    )


def probabilities_of(session, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """A session's probabilities for `images`, a batch at a time."""
    return np.concatenate(
        [session.run(["probabilities"], {"image": images[i : i + batch]})[0] for i in range(0, len(images), batch)]
    )


def seconds_per_face(sessions: dict[str, object], images: np.ndarray, rounds: int = 5) -> dict[str, float]:
    """Median seconds of one face's forward on one thread, each session timed in alternating rounds
    (this machine's speed drifts: only side by side is a ratio fair)."""
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            start = time.perf_counter()
            for image in images:
                session.run(["probabilities"], {"image": image[None]})
            times[name].append((time.perf_counter() - start) / len(images))
    return {name: float(np.median(t)) for name, t in times.items()}


def parity(
    float_probabilities: np.ndarray, int8_probabilities: np.ndarray, faces: list[Face], ages: np.ndarray
) -> dict:
    """What int8 changes, per source: MAE and interval coverage of each graph, and |Δ age|."""
    true = np.array([f.age for f in faces], dtype=np.float64)
    sources = np.array([f.source for f in faces])
    float_age, int8_age = float_probabilities @ ages, int8_probabilities @ ages
    out: dict = {}
    for source in sorted(set(sources)):
        m = sources == source
        cover = [covered(p[m], true[m], ages, INTERVAL_MASS).mean() for p in (float_probabilities, int8_probabilities)]
        delta = np.abs(int8_age[m] - float_age[m])
        out[str(source)] = {
            "faces": int(m.sum()),
            "mae_float": round(float(np.abs(float_age[m] - true[m]).mean()), 4),
            "mae_int8": round(float(np.abs(int8_age[m] - true[m]).mean()), 4),
            "interval_coverage_float": round(float(cover[0]), 4),
            "interval_coverage_int8": round(float(cover[1]), 4),
            "mean_abs_age_change": round(float(delta.mean()), 4),
            "p95_abs_age_change": round(float(np.percentile(delta, 95)), 4),
        }
    return out


def passes(per_source: dict) -> bool:
    return all(
        abs(s["mae_int8"] - s["mae_float"]) <= PARITY["mae"]
        and abs(s["interval_coverage_int8"] - s["interval_coverage_float"]) <= PARITY["interval_coverage"]
        for s in per_source.values()
    )


def write_int8(
    model_dir: Path,
    manifest: Path,
    data_root: Path,
    input_size: int,
    ages: list[float],
    calibration_count: int = CALIBRATION_FACES,
    parity_count: int = PARITY_FACES,
    log: Callable[[str], None] = print,
) -> dict:
    """Quantize `model_dir`'s model.onnx attempt by attempt, keep the first int8 graph that passes as
    model.int8.onnx, and return the card's record of every attempt (no file where none passed)."""
    model_dir = Path(model_dir)
    ages_array = np.asarray(ages, dtype=np.float64)
    calibration = load_chips(calibration_faces(manifest, calibration_count), data_root, input_size)
    faces = parity_faces(manifest, parity_count)
    images = load_chips(faces, data_root, input_size)
    float_session = onnx_session(model_dir / ONNX, threads=1)
    float_probabilities = probabilities_of(float_session, images).astype(np.float64)
    attempts = []
    out_path = model_dir / INT8
    with tempfile.TemporaryDirectory() as tmp:
        prepared_path = Path(tmp) / "prepared.onnx"
        graph = prepared(model_dir / ONNX, prepared_path)
        for attempt in ATTEMPTS:
            float_nodes = float_only_nodes(graph, attempt["float_convs"])
            quantized(prepared_path, out_path, calibration, attempt["calibration"], float_nodes)
            int8_session = onnx_session(out_path, threads=1)
            per_source = parity(
                float_probabilities, probabilities_of(int8_session, images).astype(np.float64), faces, ages_array
            )
            speed = seconds_per_face({"float": float_session, "int8": int8_session}, images[:16])
            record = {
                **attempt,
                "passed": passes(per_source),
                "sources": per_source,
                "ms_per_face_float": round(speed["float"] * 1000, 2),
                "ms_per_face_int8": round(speed["int8"] * 1000, 2),
                "speed_ratio": round(speed["int8"] / speed["float"], 3),
            }
            attempts.append(record)
            log(
                f"int8 {attempt}: "
                + ", ".join(f"{s} MAE {r['mae_float']:.3f}→{r['mae_int8']:.3f}" for s, r in per_source.items())
                + f", {record['speed_ratio']:.2f}× the float time: {'passed' if record['passed'] else 'failed'}"
            )
            if record["passed"]:
                break
        else:
            out_path.unlink()
    return {
        "method": "ONNX Runtime static quantization: QDQ, per-channel int8 weights, uint8 activations; the backbone "
        "only (from the global pooling on, float), its first float_convs convolutions float too",
        "rule": f"served where every source's validation MAE moves by at most {PARITY['mae']} and its "
        f"{INTERVAL_MASS:.0%} interval coverage by at most {PARITY['interval_coverage']:.0%} point",
        "calibration_faces": len(calibration),
        "file": INT8 if attempts[-1]["passed"] else None,
        "passed": attempts[-1]["passed"],
        "attempts": attempts,
        "speed": "one face at a time on one thread, median of alternating rounds with the float graph",
    }


def record_int8(
    model_dir: Path,
    manifest: Path | None = None,
    data_root: Path | None = None,
    parity_count: int = PARITY_FACES,
    log: Callable[[str], None] = print,
) -> dict:
    """(Re)quantize an exported model directory and write the record on its card: the faces are its
    recipe's (an ensemble's first member's) unless `manifest` and `data_root` say otherwise."""
    import json

    card = read_card(model_dir)
    training = card.get("training", {})
    recipe = training["members"][0]["training"]["recipe"] if "members" in training else training.get("recipe", {})
    manifest = manifest or Path(recipe.get("manifest", DEFAULT_MANIFEST))
    data_root = data_root or Path(recipe.get("data_root", DEFAULT_DATA_ROOT))
    for what, path in (("manifest", manifest), ("data root", data_root)):
        if not path.exists():  # a card names a folder outside the repository by its name only
            raise FileNotFoundError(f"{model_dir}'s recipe names the {what} {path}, which is not here: give it")
    card["int8"] = write_int8(
        Path(model_dir),
        manifest,
        data_root,
        int(card["input_size"]),
        card["ages"],
        parity_count=parity_count,
        log=log,
    )
    (Path(model_dir) / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card
