"""Generic configuration dataclasses: data, model, training, concepts, variants, study.

One `StudyConfig` drives a whole study (data -> guidance -> variants -> train -> evaluate ->
report). A variant is a (method, options) pair: the options are the method's own config
dataclass (`gfsr_tf.methods.<name>`), kept here as a plain dict because this module sits below
the methods. Presets live in `gfsr_tf.presets`, one file per study.

Every dataclass validates what it owns on construction; names that live in registries (methods,
evaluators, perturbations, dataset kinds, templates) are checked by `gfsr_tf.study.validate`
before any data loads. `StudyConfig.from_dict` tolerates unknown keys with a warning, so model
cards written by newer versions still load.
"""
from __future__ import annotations

import dataclasses
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any


# GFSR's loss as the paper defines it, and the guided default's additions (issue "Guided focus
# that is right for the right reasons"): read by the main job's preset and by
# GuidedModel.gfsr_plus, so both name one configuration (kept here: presets load before
# TensorFlow, and the method package imports it).
GFSR_PAPER_LOSS = {"weight": 1.0, "alpha": 0.5, "beta": 1.0, "second_order": True,
                   "cam_class": "true", "cam_mode": "training"}
# Round 5 of the guided-candidates study (docs/studies/right-reasons.md) chose lambda 3 with the
# negative-evidence term: the decision and accuracy goals on all three seeds, faithfulness on
# two (round 3's lambda 1 without the term: 2, 2, 2).
GFSR_PLUS_ADDITIONS = {"weight": 3.0, "cam_mode": "inference", "consistency_weight": 0.1,
                       "ramp_epochs": 3, "bn_recalibration": True,
                       "negative_evidence_weight": 1.0}

_SCALARS = {"int": int, "float": float, "bool": bool, "str": str}


def checked_value(owner: str, f: dataclasses.Field, value):
    """`value` for field `f` of a config dataclass when its annotation is a scalar (`int`,
    `float`, `bool`, `str`, optionally `| None`): an int for a float is converted, anything else
    of the wrong type is a ValueError naming the field (a `--set train.epochs=abc` or a preset
    typo fails in one line, not with a TypeError deep inside validation). Other annotations pass
    unchecked."""
    annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    parts = [p.strip() for p in annotation.split("|")]
    optional = "None" in parts
    kinds = [p for p in parts if p != "None"]
    if len(kinds) != 1 or kinds[0] not in _SCALARS or (value is None and optional):
        return value
    kind = kinds[0]
    ok = {"int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool), "str": isinstance(value, str)}[kind]
    if not ok:
        raise ValueError(f"{owner}.{f.name} must be {'a whole number' if kind == 'int' else kind}"
                         f"{' or null' if optional else ''}, got {value!r}")
    return float(value) if kind == "float" else value


def checked_options(owner: str, cls, options: dict) -> dict:
    """A dataclass's keyword arguments, each passed through `checked_value`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return {k: checked_value(owner, fields[k], v) if k in fields else v
            for k, v in options.items()}


def _positive(owner: str, **values) -> None:
    for key, value in values.items():
        if value is not None and value <= 0:
            raise ValueError(f"{owner}.{key} must be > 0, got {value}")


def _fraction(owner: str, **values) -> None:
    for key, value in values.items():
        if not 0 <= value <= 1:
            raise ValueError(f"{owner}.{key} must be in [0, 1], got {value}")


@dataclass
class BenchmarkConfig:
    """The embedded shortcut chest-X-ray benchmark (see `gfsr_tf.datasets.synthetic`)."""
    image_size: int = 64
    n_train: int = 800
    n_val: int = 200
    n_test: int = 400
    # P(marker | class) in train/val/test_correlated; test_decorrelated uses 0.5 for both classes.
    marker_rate_pneumonia: float = 0.9
    marker_rate_normal: float = 0.1
    # 0.3: subtle enough that the baseline takes the marker shortcut on every seed measured
    # (decorrelated accuracy 0.67-0.70); at 0.5 it did so on some runs only (docs/studies/shortcuts.md).
    lesion_opacity: float = 0.3
    # A second shortcut: a text overlay in the top-right corner that favours "normal".
    text_overlay: bool = False
    # Multi-label variant (SegX): a second finding, a basal opacity inside one lung with its own
    # mask, on about half the images of every split (drawn from its own random stream, so the
    # images without it are the benchmark's bit for bit); the marker follows finding 1 only.
    second_finding: bool = False
    seed: int = 0

    def __post_init__(self):
        _positive("benchmark", image_size=self.image_size, n_train=self.n_train,
                  n_val=self.n_val, n_test=self.n_test)
        _fraction("benchmark", marker_rate_pneumonia=self.marker_rate_pneumonia,
                  marker_rate_normal=self.marker_rate_normal, lesion_opacity=self.lesion_opacity)


@dataclass
class ModelConfig:
    """The classifier that the baseline and GFSR methods build."""
    # "resnet50" (the paper's) or "small_cnn" (a five-stage CNN whose stage outputs carry
    # ResNet50's layer names: tests and quick checks; no pretrained weights)
    backbone: str = "resnet50"
    weights: str | None = "auto"        # "auto" | "imagenet" | None | path to weights
    target_layer: str = "conv3_block4_out"
    # The head: GlobalMaxPool -> Dense(dense_units, ReLU) -> Dropout -> logits (the paper's).
    # pooling "avg" with dense_units 0 and dropout 0 is a CAM head (Zhou et al. 2016: GAP ->
    # linear), whose Grad-CAM at the last stage sums exactly to the logit minus its bias; at any
    # earlier layer (conv3, where the goals read the map) it is no decomposition.
    pooling: str = "max"
    dense_units: int = 128
    dropout: float = 0.3
    # Keras' ResNet50 uses BatchNorm momentum 0.99, whose running statistics need ~1000 steps to
    # settle; short CPU runs validate on unsettled statistics unless this is lowered.
    bn_momentum: float | None = 0.9
    # More than two classes: one sigmoid per class trained with BCE on one-hot labels (as the
    # eye-gaze papers do) instead of a softmax; evaluators read each class's own score.
    multi_label: bool = False

    def __post_init__(self):
        if self.backbone not in ("resnet50", "small_cnn"):
            raise ValueError(f"model.backbone must be resnet50 or small_cnn, got "
                             f"{self.backbone!r}")
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"model.pooling must be max or avg, got {self.pooling!r}")
        if self.dense_units < 0:
            raise ValueError(f"model.dense_units must be >= 0 (0: no hidden layer), got "
                             f"{self.dense_units}")
        _fraction("model", dropout=self.dropout)


@dataclass
class ConceptConfig:
    """Annotation propagation (paper 3.1.1-3.1.2, `gfsr_tf.guidance`): SLIC segments -> ResNet50
    segment embeddings -> k-means concepts -> soft masks."""
    n_segments: int = 50
    compactness: float = 0.2          # the paper's chest X-ray value (retina 10, dermatology 25)
    # SLIC merges segments smaller than min_size_factor x the mean segment area into a neighbour
    # (scikit-image's default, 0.5). A marker thinner or fainter than that is absorbed into the
    # background's segment and inherits the background concept's relevance (what made OpenCV 5's
    # faint 6-px "R" score 0.69 at 48 px). Lower it for small overlays; on the benchmark's
    # 30-px "R", 0.1 instead of 0.5 gave no better masks (lung AUC 0.68-0.84 vs 0.66-0.84).
    min_size_factor: float = 0.5
    # conv2_block3_out (stride 4): a segment of a 50-segment image covers ~2% of the image, i.e.
    # several stride-4 cells but often less than one stride-8 (conv3) cell, so deeper maps would
    # give many small segments the embedding of a neighbour.
    layer: str = "conv2_block3_out"
    k: int = 7
    seed: int = 0
    max_fit_segments: int = 20_000    # k-means is fitted on a seeded subsample, then assigns all
    # "zscore": standardise each embedding dimension before k-means (raw ReLU features are
    # dominated by a few high-variance channels); "l2": unit-length rows; "none".
    normalise: str = "zscore"
    min_fraction: float = 0.5         # see guidance.annotations.annotated_segments
    smooth_sigma: float = 0.0         # optional Gaussian smoothing of the masks (px)
    weights: str | None = "auto"      # as ModelConfig.weights; a trained .keras backbone works too
    batch_size: int = 32
    # Extension, not the paper (whose concepts see the embeddings only): > 0 appends each
    # segment's position - its centroid's height and distance from the vertical midline, each
    # standardised, times this weight - to its embedding before k-means, so that concepts also
    # group by where a segment lies. Why: without ImageNet weights (none offline) the random
    # ResNet50's embeddings barely tell lung tissue from the rest of a real chest X-ray, and the
    # masks propagated from 5 template-annotated images per class were nearly flat (mean
    # relevance 0.71-0.78 on the lung template, 0.59-0.60 elsewhere); with 16 and k = 15 they
    # are not (0.62-0.64 / 0.09-0.15, seeds 0-2, docs/studies/real-shortcut.md). The distance
    # from the midline (not x itself) lets both lungs (or any left-right pair) share a concept.
    position_weight: float = 0.0

    def __post_init__(self):
        _positive("concepts", n_segments=self.n_segments, k=self.k, batch_size=self.batch_size)
        if not self.position_weight >= 0:
            raise ValueError(f"concepts.position_weight must be >= 0, got "
                             f"{self.position_weight!r}")
        if not 0 <= self.min_size_factor < 1:
            raise ValueError(f"concepts.min_size_factor must be in [0, 1), got "
                             f"{self.min_size_factor!r}")
        if self.normalise not in ("zscore", "l2", "none"):
            raise ValueError(f"concepts.normalise must be zscore, l2 or none, got "
                             f"{self.normalise!r}")


@dataclass
class GazeConfig:
    """Static gaze heatmaps from fixations (EGD-CXR and the gaze simulation;
    `datasets.egd_cxr.gaze_heatmap`). The defaults are the reference tool's."""
    sigma_px: float | None = 150.0      # original pixels (the simulation scales it to its size)
    sigma_fraction: float = 0.05        # used when sigma_px is None: x the model's image side
    weighting: str = "count"            # "count" (reference) or "duration"
    image_list: str | None = None       # only these dicom_ids (a file: one per line or a CSV)

    def __post_init__(self):
        _positive("gaze", sigma_px=self.sigma_px, sigma_fraction=self.sigma_fraction)
        if self.weighting not in ("count", "duration"):
            raise ValueError(f"gaze.weighting must be count or duration, got {self.weighting!r}")


STRATEGIES = ("none", "mirrored", "multiworker")      # training.distribute


@dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    jit_compile: str | bool = "auto"   # "auto": on with a GPU, off on CPU (measured slower here)
    # GPU option: float16 compute with float32 variables, loss scaling in the custom loop; the
    # Grad-CAM, the losses and the head stay float32. Runs (slowly) on CPU too.
    mixed_precision: bool = False
    deterministic: bool = True          # tf.config.experimental.enable_op_determinism
    # Best-model criterion (maximised): val_auc or val_accuracy (on data with counterfactual
    # twins also val_twin_auc / val_twin_accuracy, which the shortcut does not reward) or "last"
    # (the last epoch's model), or val_loss (minimised; a segmenter's).
    monitor: str = "val_auc"
    # stop when the monitored figure has not improved for this many epochs (None: never)
    early_stopping_patience: int | None = None
    steps_per_epoch: int | None = None  # None: one pass over the training set
    # a name in training.schedules.SCHEDULES: "constant", "triangular2" (the eye-gaze
    # reference's cyclic schedule, stepped per epoch with a half-cycle of lr_step_epochs) or
    # "onecycle" (MedicalPatchNet's: per step, cosine up from lr/25 to lr over the first 5 % of
    # the steps, cosine down to lr/25/1e4)
    lr_schedule: str = "constant"
    optimizer: str = "adam"             # or "adamw" (decoupled weight decay, MedicalPatchNet)
    weight_decay: float = 0.01          # adamw only
    lr_step_epochs: int = 5
    clip_value: float | None = None     # clip every gradient element to [-v, v] (reference: 0.1)
    # A finished run keeps only best.keras and its card; the checkpoints (a model + optimizer
    # state each, ~0.5 GB for ResNet50) are deleted unless this is set.
    keep_checkpoints: bool = False
    # A guided variant whose first epochs are plain training (a warm-up) starts from the
    # baseline's state after them instead of repeating identical work (same seed, data order,
    # initial weights); off: every variant trains from scratch.
    share_warmup: bool = True
    # tf.distribute (training.distribute): "none", "mirrored" (all GPUs, or `cpu_replicas`
    # logical CPU devices) or "multiworker" (TF_CONFIG); batch_size is the global batch
    distribute: str = "none"
    cpu_replicas: int | None = None
    sync_batchnorm: bool = False        # BatchNorm over the global batch instead of per replica
    worker_timeout_s: float = 300.0     # multiworker: a collective waits this long, then fails

    def __post_init__(self):
        if self.distribute not in STRATEGIES:
            raise ValueError(f"train.distribute must be one of {', '.join(STRATEGIES)}, got "
                             f"{self.distribute!r}")
        _positive("train", cpu_replicas=self.cpu_replicas,
                  worker_timeout_s=self.worker_timeout_s)
        _positive("train", epochs=self.epochs, batch_size=self.batch_size,
                  learning_rate=self.learning_rate, steps_per_epoch=self.steps_per_epoch)
        if self.monitor not in ("last", "val_loss") and not (
                self.monitor.startswith("val_") and self.monitor.endswith(("_auc", "_accuracy"))):
            raise ValueError(f"train.monitor must be last, val_loss or a val_*_auc / "
                             f"val_*_accuracy figure, got {self.monitor!r}")
        _positive("train", early_stopping_patience=self.early_stopping_patience)
        from .training.schedules import SCHEDULES   # pure Python: no TensorFlow
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"train.lr_schedule must be one of {', '.join(SCHEDULES)}, got "
                             f"{self.lr_schedule!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"train.optimizer must be adam or adamw, got {self.optimizer!r}")
        _positive("train", lr_step_epochs=self.lr_step_epochs, clip_value=self.clip_value)
        if self.jit_compile not in ("auto", True, False):
            raise ValueError(f"train.jit_compile must be 'auto', true or false, got "
                             f"{self.jit_compile!r}")


@dataclass
class VariantConfig:
    """One model of a study: a registered method and the options of its config dataclass
    (e.g. `{"weight": 3.0}` for GFSR's RelevanceConfig); unset options keep the method's
    defaults."""
    name: str
    method: str
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.name or "/" in self.name:
            raise ValueError(f"variant name must be a non-empty folder name, got {self.name!r}")


# Per-image guidance a method can train towards (gfsr_tf.guidance): ground truth the data carries
# (lungs, lesions, gaze), masks propagated from a few annotations, or a wrong-mask control
# (random_blobs: the lung area at random places).
GUIDANCE_SOURCES = ("lungs", "lesions", "gaze", "annotations", "random_blobs")


def default_variants() -> tuple[VariantConfig, ...]:
    """Baseline vs GFSR, trained with the same seed, data and initial weights."""
    return (VariantConfig("baseline", "baseline"), VariantConfig("gfsr", "gfsr"))


DEFAULT_EVALUATORS = ("classification", "robustness", "localization", "focus", "audit",
                      "examples")


@dataclass
class StudyConfig:
    name: str = "pneumonia_gfsr"
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    # Real data instead of the benchmark: a MedMNIST npz or a folder (Kermany, HAM10000, EGD-CXR,
    # class folders); `dataset` names the loader ("auto": detected from the layout).
    data_dir: str | None = None
    dataset: str = "auto"
    requires_data_dir: bool = False     # real-data presets have no benchmark to fall back on
    gaze: GazeConfig = field(default_factory=GazeConfig)
    val_fraction: float = 0.1           # carved from train for real data without a val split
    # Class-folder data (Kermany, generic folders) whose pixels at this size would exceed this
    # many MB is decoded once into `image_cache` (default $GFSR_CACHE or ~/.cache/gfsr_tf) and
    # streamed from disk (`datasets.streaming`); None: always in memory.
    stream_above_mb: float | None = 4096.0
    image_cache: str | None = None
    # Robustness tests on the test split (evaluators.robustness.PERTURBATIONS): the benchmark's
    # marker twins are always added; "selective_blur" (retina), "periphery_replaced"
    # (dermatology; with `reference_image`, else the training images' median border colour).
    robustness: tuple = ("marker_cropped",)
    # The audit's pasted overlays besides the laterality "R" ("text": an "AP" text overlay in the
    # top-right corner; `gfsr audit --text-overlay`)
    audit_overlays: tuple = ()
    reference_image: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    concepts: ConceptConfig = field(default_factory=ConceptConfig)
    variants: tuple = field(default_factory=default_variants)
    evaluators: tuple = DEFAULT_EVALUATORS
    # Relevance masks from annotations: a folder of annotation images (matched by file stem) or a
    # JSON {image stem: [segment ids]}. Without one, the benchmark simulates coarse scribbles over
    # the lungs of `annotations_per_class` training images per class (the paper's ~5).
    annotations: str | None = None
    annotations_per_class: int = 5
    # Real data without annotations: draw template annotations of this kind
    # (guidance.templates: lung_fields | fundus_disc | central_lesion) on annotations_per_class
    # training images per class; reports say they are templates, not a clinician's.
    annotation_template: str | None = None
    smoke: bool = False
    gradcam_examples: int = 6

    def __post_init__(self):
        self.robustness = tuple(self.robustness)
        self.audit_overlays = tuple(self.audit_overlays)
        if not set(self.audit_overlays) <= {"text"}:
            raise ValueError(f"study.audit_overlays may hold 'text' only, got "
                             f"{self.audit_overlays}")
        self.evaluators = tuple(self.evaluators)
        self.variants = tuple(v if isinstance(v, VariantConfig) else VariantConfig(**v)
                              for v in self.variants)
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        _fraction("study", val_fraction=self.val_fraction)
        _positive("study", annotations_per_class=self.annotations_per_class)

    def variant(self, name: str) -> VariantConfig:
        for v in self.variants:
            if v.name == name:
                return v
        raise ValueError(f"no variant {name!r}; this study has "
                         f"{', '.join(v.name for v in self.variants)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StudyConfig":
        """Inverse of to_dict. Unknown keys (a newer version's) are dropped with a warning; a
        card from before variants existed (a top-level `relevance` section) becomes baseline +
        GFSR with those options."""
        d = dict(d)
        legacy = d.pop("relevance", None)
        if legacy is not None and "variants" not in d:
            d["variants"] = [{"name": "baseline", "method": "baseline"},
                             {"name": "gfsr", "method": "gfsr", "options": dict(legacy)}]
        sub = {"benchmark": BenchmarkConfig, "model": ModelConfig, "train": TrainConfig,
               "concepts": ConceptConfig, "gaze": GazeConfig}
        for key, klass in sub.items():
            if key in d:
                d[key] = klass(**_known(klass, d[key], key))
        if "variants" in d:
            d["variants"] = tuple(VariantConfig(**_known(VariantConfig, v, "variants[]"))
                                  for v in d["variants"])
        return cls(**_known(cls, d, "study"))


def _known(klass, values: dict, where: str) -> dict:
    fields = {f.name for f in dataclasses.fields(klass)}
    unknown = sorted(set(values) - fields)
    if unknown:
        _warnings.warn(f"ignoring unknown {where} config keys {unknown} (written by a newer "
                       "gfsr_tf?)", stacklevel=3)
    return {k: v for k, v in values.items() if k in fields}


def set_value(config: StudyConfig, dotted: str, raw: str) -> None:
    """`--set section.key=value`: assign `raw` (parsed as JSON when it parses, else a string) to
    the field at `dotted` (e.g. `train.epochs`, `model.target_layer`,
    `variants.gfsr.weight` for a variant's option). Unknown paths are a ValueError."""
    import json
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    parts = dotted.split(".")
    if parts[0] == "variants":
        if len(parts) != 3:
            raise ValueError(f"--set {dotted}: use variants.<variant>.<option>")
        config.variant(parts[1]).options[parts[2]] = value
        return
    target = config
    for part in parts[:-1]:
        if not dataclasses.is_dataclass(target) or not hasattr(target, part):
            raise ValueError(f"--set {dotted}: no config section {part!r}")
        target = getattr(target, part)
    key = parts[-1]
    if not dataclasses.is_dataclass(target) or key not in {f.name for f in
                                                           dataclasses.fields(target)}:
        raise ValueError(f"--set {dotted}: no config field {key!r}")
    if isinstance(getattr(target, key), tuple) and isinstance(value, list):
        value = tuple(value)
    field_ = next(f for f in dataclasses.fields(target) if f.name == key)
    setattr(target, key, checked_value(".".join(parts[:-1]) or "config", field_, value))
    target.__post_init__()  # re-validate the section
