"""python -m model_training {index,calibrate-crop,align-faces,train,evaluate,export,quantize,set-crop}, from the
repository's root."""

from __future__ import annotations

import argparse
import os
import random
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Loading best weights into a model compiled for the next stage: the old optimizer state is not wanted.
warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")

from app.faces.detectors import DETECTORS  # noqa: E402
from model_training.dataset import DEFAULT_DATA_ROOT, DEFAULT_MANIFEST  # noqa: E402
from model_training.quantize import PARITY_FACES  # noqa: E402

CROP_HELP = "a crop calibration JSON, once per detector (default: every manifests/crop_*.json)"
INT8_FACES_HELP = "validation faces of each source the int8 graph is checked on (default: %(default)s)"


def _crops(paths: list[Path] | None) -> dict[str, dict]:
    """Crops by detector from calibration files (default: every manifests/crop_*.json)."""
    from model_training import calibrate

    paths = paths or sorted(Path("manifests").glob("crop_*.json"))
    if not paths:
        raise FileNotFoundError("no crop calibration: run python -m model_training calibrate-crop first")
    return dict(calibrate.load(path) for path in paths)


def cmd_index(args: argparse.Namespace) -> None:
    from model_training.dataset import SOURCES, index_folder, split_faces, summary, write_manifest

    data_root, manifest = args.data_root or SOURCES[args.source][0], args.manifest or SOURCES[args.source][1]
    faces, report = index_folder(data_root, source=args.source)
    faces = split_faces(faces, seed=args.seed)
    write_manifest(faces, manifest)
    print(summary(faces, report))
    print(f"wrote {manifest}")


def cmd_calibrate_crop(args: argparse.Namespace) -> None:
    from app.faces.detectors import make_detector
    from model_training import calibrate
    from model_training.dataset import read_manifest

    faces = read_manifest(args.manifest, "train")
    faces = random.Random(args.seed).sample(faces, min(args.limit, len(faces)))
    spec, info = calibrate.calibrate(faces, args.data_root, make_detector(args.detector))
    out = args.out or calibrate.default_path(args.detector)
    calibrate.save(spec, info, out)
    print(f"{args.detector} crop {spec} from {info['detected']}/{info['faces']} detected chips -> {out}")


def cmd_align_faces(args: argparse.Namespace) -> None:
    from model_training.aligned import align_all

    align_all(args.source, args.out, args.threads)
    print(f"wrote {args.out / 'manifest.csv'}")


def cmd_train(args: argparse.Namespace) -> None:
    from model_training.config import load_recipe, override
    from model_training.train import train

    recipe = override(
        load_recipe(args.recipe),
        input_size=args.input_size,
        batch_size=args.batch_size,
        weights=args.weights,
        epochs=args.epochs,
        manifest=args.manifest and str(args.manifest),
        data_root=args.data_root and str(args.data_root),
    )
    run_dir = args.run_dir or Path("runs") / recipe.name
    train(recipe, run_dir, limit=args.limit)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from model_training.evaluate import evaluate

    evaluate(
        args.model_dir,
        args.manifest,
        args.data_root,
        args.split,
        args.out,
        args.limit,
        record=args.record,
        flip=args.tta == "flip",
        runtime=args.runtime,
    )


def cmd_export(args: argparse.Namespace) -> None:
    from model_training.export import export, export_ensemble

    crops = _crops(args.crop)
    if len(args.run_dir) == 1:
        export(args.run_dir[0], args.out, crops, args.version, args.name, args.calibration_faces, args.int8_faces)
    else:
        export_ensemble(
            args.run_dir, args.out, crops, args.version, args.name or "dex-age", args.calibration_faces, args.int8_faces
        )


def cmd_quantize(args: argparse.Namespace) -> None:
    from model_training.quantize import record_int8

    record_int8(args.model_dir, args.manifest, args.data_root, parity_count=args.int8_faces)


def cmd_set_crop(args: argparse.Namespace) -> None:
    from model_training.export import set_crops

    card = set_crops(args.model_dir, _crops(args.crop), args.version)
    print(f"{args.model_dir} {card['version']}: crops for {', '.join(sorted(card['crops']))}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model_training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index a folder of faces (UTKFace, AAF) and write its split manifest")
    p.add_argument("--source", default="utkface", choices=["utkface", "aaf"])
    p.add_argument("--data-root", type=Path, help="the source's folder (default: ../shared/data/UTKFace, data/aaf)")
    p.add_argument("--manifest", type=Path, help="CSV to write (default manifests/SOURCE.csv)")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("calibrate-crop", help="measure how a detector box maps to the training framing")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--limit", type=int, default=2000, help="training faces to measure")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--detector", default=DETECTORS[0], choices=DETECTORS, help="the detector whose landmarks or boxes to measure"
    )
    p.add_argument("--out", type=Path, help="calibration JSON (default manifests/crop_DETECTOR.json)")
    p.set_defaults(func=cmd_calibrate_crop)

    p = sub.add_parser("align-faces", help="cache every source's faces aligned as the service aligns them")
    p.add_argument("--source", nargs="+", default=["utkface", "aaf"], choices=["utkface", "aaf"])
    p.add_argument("--out", type=Path, default=Path("data/faces"))
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_align_faces)

    p = sub.add_parser("train", help="run or resume the DEX stages of a recipe")
    p.add_argument("recipe", help="a recipe file, or a built-in name: mobilenet_v2, resnet50")
    p.add_argument("--run-dir", type=Path, help="run folder (default runs/RECIPE_NAME); an existing one resumes")
    p.add_argument("--weights", help="override the backbone init: imagenet, none, or a weights file")
    p.add_argument("--input-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs", type=int, help="epochs for every stage (for smoke runs)")
    p.add_argument("--limit", type=int, help="train on this many faces (and a quarter as many val faces)")
    p.add_argument("--manifest", type=Path)
    p.add_argument("--data-root", type=Path)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a model directory on a manifest split")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--out", type=Path, help="report folder (default MODEL_DIR/evaluation)")
    p.add_argument("--limit", type=int)
    p.add_argument("--record", action="store_true", help="also write the metrics into MODEL_DIR/model.json")
    p.add_argument("--tta", default="none", choices=["none", "flip"], help="flip: average with the mirror image")
    p.add_argument("--runtime", default="tensorflow", choices=["tensorflow", "onnx"])
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="export a run's best weights (or an ensemble of several) as a model directory")
    p.add_argument(
        "run_dir", type=Path, nargs="+",
        help="a run folder; several (run folders, a run's stage-NAME.weights.h5, model directories): their ensemble",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="model directory to write (replaced)")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--name", help="model name (default: the recipe's)")
    p.add_argument("--crop", type=Path, action="append", help=CROP_HELP)
    p.add_argument("--calibration-faces", type=int, help="validation faces for the temperature (default: all)")
    p.add_argument("--int8-faces", type=int, default=PARITY_FACES, help=INT8_FACES_HELP)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("quantize", help="(re)write a model directory's int8 graph and its parity on the card")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--manifest", type=Path, help="its training and validation faces (default: its recipe's)")
    p.add_argument("--data-root", type=Path, help="default: its recipe's")
    p.add_argument("--int8-faces", type=int, default=PARITY_FACES, help=INT8_FACES_HELP)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("set-crop", help="replace a model directory's crops (after re-calibrating a detector)")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--crop", type=Path, action="append", help=CROP_HELP)
    p.add_argument("--version", help="new model version (default: unchanged)")
    p.set_defaults(func=cmd_set_crop)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
