"""Run one study: data -> guidance -> variants (method, options) -> train -> evaluate ->
report.json -> rendered report. Experiments, the ablation and `gfsr train` are thin wiring over
`run_study`."""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import keras

from ..artifacts import read_model_card, write_model_card
from ..config import StudyConfig
from ..evaluators import EvalContext, check_names, compare, evaluate_model
from ..evaluators.classification import one_class_warnings
from ..evaluators.context import eval_split
from ..evaluators.examples import example_index, save_examples
from ..guidance.masks import save_concepts
from ..methods import get_method
from ..preprocessing import get_preprocessor
from ..report import render_run
from ..report.io import write_json
from ..training import Trainer
from ..training.distribute import recorded, strategy_for, synchronise_batchnorm
from .data import data_summary, load_data
from .guidance import StudyGuidance


def validate(config: StudyConfig) -> None:
    """Every name the study will look up - methods and their options, evaluators, robustness
    tests, dataset kind, annotation template - checked before any data loads."""
    from ..datasets import DATASET_KINDS
    from ..evaluators.robustness import PERTURBATIONS
    from ..guidance.templates import TEMPLATES
    for v in config.variants:
        method = get_method(v.method)
        method.check(config, method.make_config(v.options))
    check_names(config.evaluators)
    unknown = [r for r in config.robustness if r not in PERTURBATIONS]
    if unknown:
        raise ValueError(f"unknown robustness test(s) {unknown}; choose from "
                         f"{', '.join(PERTURBATIONS)}")
    if config.dataset not in ("auto",) + DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {config.dataset!r}; choose auto or one of "
                         f"{', '.join(DATASET_KINDS)}")
    from ..datasets import SHORTCUT_KINDS
    from ..datasets.real_shortcut import TEMPLATE_OF
    if config.dataset in SHORTCUT_KINDS and config.annotation_template not in (
            None, TEMPLATE_OF[config.dataset]):
        raise ValueError(f"{config.dataset} calls for {TEMPLATE_OF[config.dataset]} template "
                         f"annotations, not {config.annotation_template}: use --preset "
                         "real_shortcut, or --set annotation_template="
                         f"{TEMPLATE_OF[config.dataset]}")
    if config.annotation_template and config.annotation_template not in TEMPLATES:
        raise ValueError(f"unknown annotation template {config.annotation_template!r}; choose "
                         f"one of {', '.join(TEMPLATES)}")


def train_variant(config: StudyConfig, method, options, data: dict, targets: dict, run_dir: Path,
                  warnings: list, verbose: int = 1, **shared) -> tuple[keras.Model, list[dict],
                                                                       float]:
    """Train one variant (a registered method with its parsed options), resuming if run_dir
    holds a checkpoint, and write its model card; returns the best model as saved, its history
    and training seconds. `shared`: Trainer.fit's snapshot_epochs / start_from."""
    train = data["train"]
    size = train.images.shape[1]
    # what the preprocessor makes of the pixels is what the model takes (gray -> RGB for ResNet50)
    preprocessor = method.preprocessor_for(options)
    input_shape = tuple(get_preprocessor(preprocessor)(train.images[:1]).shape[1:])
    train_config = method.train_config(config, options)
    strategy = strategy_for(train_config)
    with strategy.scope():              # variables mirrored on every replica
        model = method.build_model(config, options, train.num_classes, input_shape, warnings)
        if train_config.sync_batchnorm:
            synchronise_batchnorm(model)
    trainer = Trainer(model, run_dir, method.step_factory(options, config), train=train_config,
                      verbose=verbose, strategy=strategy)
    history = trainer.fit(train, data["val"], targets, **shared)
    model = keras.models.load_model(run_dir / "best.keras")
    finished = method.finish(model, data, config, options, warnings, run_dir=run_dir,
                             verbose=verbose)
    if finished is not None:        # a last stage changed the model: it is what is saved
        tmp = run_dir / "best.tmp.keras"
        model.save(tmp)
        os.replace(tmp, run_dir / "best.keras")
    # Training time from the per-epoch log, so a resumed or re-evaluated run reports it whole.
    seconds = float(sum(h["seconds"] for h in history)) + sum(
        float(v.get("seconds", 0.0)) for v in (finished or {}).values() if isinstance(v, dict))
    write_model_card(run_dir / "best.keras", method=method.name,
                     options=dataclasses.asdict(options), class_names=train.class_names,
                     image_size=size, channels=train.images.shape[-1],
                     preprocessor=preprocessor, target_layer=method.layer_for(config, options),
                     config=config.to_dict(), extra={"saliency": method.saliency_for(options),
                                                     **method.training_fields(options),
                                                     **(finished or {})})
    return model, history, seconds


def plan_shared_epochs(config: StudyConfig, run_root: Path) -> dict[str, dict]:
    """Trainer.fit keywords per variant: the baseline variant leaves a snapshot after each
    later variant's plain (warm-up) epochs, and that variant starts from it. The baseline must
    come first in `config.variants`; with `train.share_warmup` off nothing is shared."""
    if not config.train.share_warmup:
        return {}
    plan: dict[str, dict] = {}
    donor = None
    for variant in config.variants:
        method = get_method(variant.method)
        if method.name == "baseline" and donor is None:
            donor = variant.name
            plan[donor] = {"snapshot_epochs": set()}
            continue
        # k = every epoch: a variant that only adds a last stage to the baseline (DFR)
        k = min(method.plain_epochs(method.make_config(variant.options)), config.train.epochs)
        if donor is not None and k > 0:
            plan[donor]["snapshot_epochs"].add(k)
            plan[variant.name] = {"start_from": run_root / donor / "snapshots"
                                  / f"epoch-{k}"}
    return plan


def run_study(config: StudyConfig, out_dir: str | Path = "runs", *,
              data: dict | None = None, verbose: int = 1, render: bool = True) -> dict:
    """Run a study and write runs/<name>/: report.json (+ the maps the report draws from) and,
    with `render`, summary.md, report.html and figures (`gfsr report` redraws them)."""
    config = copy.deepcopy(config)
    validate(config)
    run_root = Path(out_dir) / config.name
    run_root.mkdir(parents=True, exist_ok=True)
    (run_root / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    warnings: list[str] = []
    t0 = time.perf_counter()
    data = data or load_data(config, warnings)
    data_seconds = time.perf_counter() - t0
    train = data["train"]
    guidance = StudyGuidance(config, train, run_root, Path(out_dir) / ".cache", warnings, verbose)
    report: dict = {"config": config.to_dict(), "warnings": warnings, "smoke": config.smoke,
                    "class_names": list(train.class_names), "data": data_summary(data),
                    "timing": {"data_seconds": data_seconds}}
    trained = []
    sharing = plan_shared_epochs(config, run_root)
    # every variant's guidance first: masks that cannot be made (annotations without segments,
    # a dataset without the masks asked for) fail or are reported before any model trains
    prepared = []
    for variant in config.variants:
        method = get_method(variant.method)
        options = method.make_config(variant.options)
        request = method.guidance(options)
        targets, used = {}, None
        if request is not None:
            masks, used = guidance.masks(variant.name, *request)
            if masks is None:
                continue
            targets = {"mask": masks}
        prepared.append((variant, method, options, targets, used))
    for variant, method, options, targets, used in prepared:
        if verbose:
            print(f"== {config.name}/{variant.name}: method {method.name}"
                  + (f", guidance {used}" if used else ""))
        run_dir = run_root / variant.name
        model, history, seconds = train_variant(config, method, options, data, targets,
                                                run_dir, warnings, verbose,
                                                **sharing.get(variant.name, {}))
        ctx = EvalContext(method.classifier_view(model),
                          get_preprocessor(method.preprocessor_for(options)), data, config,
                          method.layer_for(config, options), method, run_dir,
                          full_model=model, verbose=verbose,
                          saliency=method.saliency_for(options))
        if used == "annotations" and guidance.concepts is not None:
            # Fig 8 shows this model's map on training images that were not annotated
            ctx.splits = {**data, "concept_examples": train.subset(guidance.concept_examples())}
            ctx.heatmaps("concept_examples")
        section = evaluate_model(ctx, config.evaluators)
        warnings += one_class_warnings(variant.name, section, data)
        train_config = method.train_config(config, options)
        section["training"] = {"history": history, "seconds": seconds, "method": method.name,
                               "options": dataclasses.asdict(options), "guidance": used,
                               "distribute": recorded(train_config),
                               **method.training_fields(options),
                               # what a last stage (Method.finish) recorded on the model card
                               **{k: v for k, v in read_model_card(run_dir / "best.keras").items()
                                  if k in method.stage_fields}}
        report[variant.name] = section
        trained.append(variant)
    for variant in trained:
        report.update(get_method(variant.method).annotate(report, variant.name))
    report.update(compare(report, [v.name for v in trained], data))
    if guidance.section is not None:
        report["masks"] = guidance.section
        save_concepts(run_root / "concepts.npz", train.images, guidance.concepts,
                      guidance.concept_examples())
    if "examples" in config.evaluators and trained:
        split = data[eval_split(data)]
        save_examples(run_root / "examples.npz", split,
                      example_index(split, config.gradcam_examples), eval_split(data))
    if not config.train.keep_checkpoints:  # every variant has trained: no one needs them now
        for variant in trained:
            shutil.rmtree(run_root / variant.name / "snapshots", ignore_errors=True)
    return finish(report, run_root, warnings, t0, render)


def finish(report: dict, run_root: Path, warnings: list, t0: float, render: bool) -> dict:
    """Write report.json (one warning per distinct message: each model build may repeat it;
    the total time) and, with `render`, the rendered report."""
    report["warnings"] = list(dict.fromkeys(warnings))
    report["timing"]["total_seconds"] = time.perf_counter() - t0
    write_json(run_root / "report.json", report)
    if render:
        render_run(run_root)
    return report
