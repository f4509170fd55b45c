"""Options shared by `gfsr train` and the experiment scripts, and by the commands that read a
saved model (evaluate, audit); the model + card loader."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable

# What TensorFlow's C++ runtime writes to stderr while it loads and looks for devices on a machine
# without a GPU. It is written before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL does
# not filter it (tensorflow/tensorflow#100442, open); the only way to keep it out of a command's
# output is to catch stderr while TensorFlow starts. Anything else written then is passed on.
STARTUP_CHATTER = ("All log messages before absl::InitializeLog()", "oneDNN custom operations",
                   "cudart_stub.cc", "failed call to cuInit", "Unable to register cu",
                   "This TensorFlow binary is optimized", "rebuild TensorFlow with the appropriate",
                   "computation_placer.cc", "TF-TRT Warning")


def import_tensorflow_quietly():
    """Import TensorFlow and list its devices with the start-up chatter above removed from
    stderr; other lines (a real error) still reach the user. TF_CPP_MIN_LOG_LEVEL=0 (or unset)
    keeps everything. Returns the module."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        import tensorflow as tf
        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf
            tf.config.list_physical_devices()  # the cuInit error comes with the first device query
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if not any(chatter in line for chatter in STARTUP_CHATTER):
                    sys.stderr.write(line)
    return tf


def select_rows(available, wanted: str | None, seeds: Iterable[int] | None = None,
                what: str = "row") -> list[str]:
    """`--rows a,b` (None or "all": every row, in the study's order) crossed with `--seeds 0,1`
    (None: the row names alone; else `study.rows.row_key` names, seed-major). Unknown rows are a
    ValueError naming the known ones. It lives here, not in `study/rows.py`, because the
    experiments check their options before TensorFlow loads and `gfsr_tf.study` imports it."""
    available = list(available)
    names = available if wanted in (None, "", "all") else \
        [r.strip() for r in wanted.split(",") if r.strip()]
    unknown = [r for r in names if r not in available]
    if unknown:
        raise ValueError(f"unknown {what}(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(available)}")
    return names if seeds is None else [f"{r}@seed{s}" for s in seeds for r in names]


def add_study_arguments(p: argparse.ArgumentParser, default_preset: str = "benchmark",
                        gfsr_options: bool = True) -> None:
    """The study options; `gfsr_options=False` leaves out those that only steer GFSR variants
    (--lambda, --layer, --masks, --annotations), for experiments that train none
    (MedicalPatchNet, SegX)."""
    from ..config import GUIDANCE_SOURCES
    from ..datasets import DATASET_KINDS
    from ..presets import PRESETS
    p.add_argument("--preset", default=default_preset,
                   help=f"named study: {', '.join(PRESETS)} (default: {default_preset}; "
                        "'paper' = 128 px, ImageNet weights, the paper's hyper-parameters)")
    p.add_argument("--smoke", action="store_true", help="the preset at tiny sizes, about a "
                   "minute (for tests; real data is still read whole)")
    p.add_argument("--data-dir", help="real data (default: the embedded benchmark): a MedMNIST "
                   "npz (pneumoniamnist.npz, retinamnist_128.npz, dermamnist_c_224.npz, ...), the "
                   "Kermany layout chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg, a HAM10000 "
                   "folder (metadata CSV, images, *_segmentation.png masks), an EGD-CXR folder "
                   "(master_sheet.csv, fixations.csv, DICOMs) or class folders "
                   "({train,test}/<class>/* or <class>/*, e.g. Husky vs Wolf)")
    p.add_argument("--dataset", choices=("auto",) + DATASET_KINDS[1:],
                   help="loader for --data-dir (default: detected from the layout)")
    p.add_argument("--out", default="runs", help="output root (default: runs)")
    p.add_argument("--name", help="run folder name (default: the preset's)")
    p.add_argument("--epochs", type=int, help="training epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--image-size", type=int, help="square input size in pixels")
    p.add_argument("--weights", help="'auto' (ImageNet if obtainable, else random init with a "
                   "warning), 'imagenet', 'none', or a path to ResNet50 no-top weights")
    if gfsr_options:
        p.add_argument("--lambda", dest="lam", type=float, help="GFSR's relevance loss weight, "
                       "set on every GFSR variant of the study (the main job: both `gfsr` and "
                       "`gfsr_plus`; defaults: 1 for `gfsr`, the paper's, 3 for `gfsr_plus`)")
        p.add_argument("--layer", help="Grad-CAM target layer (default: the preset's - "
                       "conv3_block4_out, the paper's, for the benchmark and paper presets; "
                       "conv2_block3_out for the real-data presets)")
        p.add_argument("--masks", choices=GUIDANCE_SOURCES,
                       help="GFSR relevance masks: the benchmark's true lung fields (default), "
                       "its lesions, eye-gaze heatmaps (EGD-CXR), or concept masks propagated "
                       "from a few annotations (SLIC -> ResNet50 segment embeddings -> k-means). "
                       "On real data without lung masks, GFSR falls back to --annotations or "
                       "template annotations")
        p.add_argument("--annotations", help="with --masks annotations: a folder of "
                       "annotation images (any non-zero pixel = marked, matched to training "
                       "images by file stem) or a JSON {image stem: [SLIC segment ids]}; default "
                       "on the benchmark: simulated scribbles on 5 images per class")
    else:   # study_config reads them: unset, as when a GFSR experiment leaves them out
        p.set_defaults(lam=None, layer=None, masks=None, annotations=None)
    p.add_argument("--reference-image", help="background image for the periphery_replaced "
                   "robustness test (default: the training images' median border colour)")
    p.add_argument("--seed", type=int)
    p.add_argument("--variants", help="train only these of the preset's variants, comma-"
                   "separated (e.g. baseline,gfsr_plus; kept in the preset's order). A guided "
                   "variant starts from the baseline's shared warm-up only when the baseline "
                   "is among them")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the training "
                   "checkpoints of a finished run (default: deleted; best.keras stays)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="any config field, e.g. train.epochs=3, "
                   "model.dropout=0.5, variants.gfsr.warmup_epochs=2 (repeatable; values are "
                   "JSON where they parse)")
    add_distribute_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_distribute_arguments(p: argparse.ArgumentParser) -> None:
    """--distribute / --cpu-replicas / --sync-batchnorm (`gfsr train`, every experiment)."""
    p.add_argument("--distribute", choices=("none", "mirrored", "multiworker"),
                   help="tf.distribute strategy: mirrored (all GPUs, or --cpu-replicas logical "
                   "CPU devices) or multiworker (from TF_CONFIG; worker 0 writes the run)")
    p.add_argument("--cpu-replicas", type=int, help="with --distribute mirrored: split the CPU "
                   "into N logical devices (tests the replicated path without GPUs)")
    p.add_argument("--sync-batchnorm", action="store_true", help="BatchNorm statistics over "
                   "the global batch instead of per replica")


def start_distribution(args, *trains) -> str:
    """Apply the distribute options to each TrainConfig (or anything with those fields), create
    the strategy - before any data loads: a multi-worker strategy must come first in the process,
    and logical CPU devices before TensorFlow starts - and return where this process writes:
    args.out on worker 0, args.out/workertemp_<i> on worker i (`training.distribute.write_dir`)."""
    import_tensorflow_quietly()
    from ..training.distribute import strategy_for, write_dir
    for train in trains:
        for key in ("distribute", "cpu_replicas"):
            if getattr(args, key, None) is not None:
                setattr(train, key, getattr(args, key))
        if getattr(args, "sync_batchnorm", False):
            train.sync_batchnorm = True
        train.__post_init__()
    return write_dir(args.out, strategy_for(trains[0]))


def _gfsr_variants(config):
    return [v for v in config.variants if v.method == "gfsr"]


def study_config(args):
    """StudyConfig from parsed study options; ValueError on contradictory or unknown options."""
    from ..config import set_value
    from ..presets import preset
    config = preset(args.preset, smoke=args.smoke)
    overrides = [(args.name, config, "name"), (args.data_dir, config, "data_dir"),
                 (args.dataset, config, "dataset"),
                 (args.epochs, config.train, "epochs"), (args.batch_size, config.train, "batch_size"),
                 (args.learning_rate, config.train, "learning_rate"),
                 (args.image_size, config.benchmark, "image_size"),
                 (args.layer, config.model, "target_layer"),
                 (args.seed, config.train, "seed"), (args.seed, config.benchmark, "seed"),
                 (args.annotations, config, "annotations"),
                 (args.reference_image, config, "reference_image"),
                 (args.keep_checkpoints or None, config.train, "keep_checkpoints")]
    for value, section, key in overrides:
        if value is not None:
            setattr(section, key, value)
    for value, option in ((args.lam, "weight"), (args.masks, "mask_source")):
        if value is not None:
            for v in _gfsr_variants(config):
                v.options[option] = value
    if args.weights is not None:
        config.model.weights = None if args.weights.lower() == "none" else args.weights
    if args.annotations and not any(v.options.get("mask_source") == "annotations"
                                    for v in _gfsr_variants(config)):
        raise ValueError("--annotations needs --masks annotations")
    if getattr(args, "variants", None):
        wanted = select_rows([v.name for v in config.variants], args.variants,
                             what="variant")
        config.variants = tuple(v for v in config.variants if v.name in wanted)
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item}: expected SECTION.KEY=VALUE")
        set_value(config, key.strip(), value.strip())
    for section in (config, config.benchmark, config.model, config.train, config.concepts):
        section.__post_init__()  # options set above are validated like a preset's
    if config.data_dir and not Path(config.data_dir).exists():   # before TensorFlow loads
        raise FileNotFoundError(f"data directory not found: {config.data_dir}")
    return config


def load_model_and_card(path):
    from ..artifacts import load_model, read_model_card
    from ..methods import get_method
    card = read_model_card(path)
    # methods whose model has more outputs (the gaze U-Net's decoder) are served as classifiers
    return get_method(card.get("method", "gfsr")).classifier_view(load_model(path)), card


def add_saved_model_arguments(p: argparse.ArgumentParser, folder_prefix: str) -> None:
    p.add_argument("--model", required=True, help="a .keras classifier")
    p.add_argument("--data-dir", help="real data as for `gfsr train` (default: the model card's "
                   "data, else the embedded benchmark)")
    p.add_argument("--layer", help="Grad-CAM layer (default: the model card's)")
    p.add_argument("--out", default="runs")
    p.add_argument("--name", help=f"report folder name (default: {folder_prefix}_<run>)")


def saved_model_study(args, model, card: dict, folder_prefix: str):
    """The study a saved model is evaluated in: its card's (the data it was trained on), else
    the benchmark's; --data-dir and --name override, the image size is the model's."""
    from ..config import StudyConfig
    from ..presets import preset
    config = StudyConfig.from_dict(card["config"]) if card.get("config") else preset("benchmark")
    config.name = args.name or f"{folder_prefix}_{Path(args.model).parent.name}"
    if args.data_dir:
        config.data_dir = args.data_dir
    config.benchmark = dataclasses.replace(config.benchmark, image_size=model.input_shape[1])
    return config
