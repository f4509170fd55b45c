"""The report: a pure function of the run folder. `render_run(run_dir)` (`gfsr report RUN_DIR`)
writes summary.md, report.html and every figure from report.json and the maps the run saved
(examples.npz, concepts.npz, <variant>/explanations.npz), loading no model.

report.json (stable; later versions add keys, never rename these)
  config, warnings, smoke, class_names, data (per split: n, positives, per_class), timing
  <variant>  one section per trained variant ("baseline", "gfsr", ...):
    metrics, thresholds, predictions   (evaluators.classification)
    robustness                         (evaluators.robustness)
    localization                       (evaluators.localization; lesion masks only)
    focus                              (evaluators.focus; template-annotated real data)
    training     history, seconds, method, options, guidance (+ relevance for GFSR/baseline)
  <variant>_configuration  (GFSR variants) paper-faithful | changed settings | extension
  comparison  gfsr - baseline per split (paired bootstrap); comparisons: every variant's
  masks       (propagated masks only) annotator, concept scores, timings, ...
  segx        (the SegX study) settings, eval_split, segmenter {test dice/iou, history},
              models.<variant>: classification (per-class thresholds, metrics with CIs),
              explainers.<gradcam|expected_gradients>: iou_top5 / auitc {original, segx,
              difference}, controls, c_iou / c_auitc {correct, incorrect}, certainty_auroc,
              risk_coverage
NaN is written as null.
"""
from __future__ import annotations

from pathlib import Path

from .html import write_html
from .io import clean, read_report, write_json
from .markdown import summary_markdown, variants

FIGURES = (("roc.png", "ROC curves"), ("confusion.png", "Confusion matrices"),
           ("gradcam_grid.png", "Grad-CAM per variant | input (lesion outline)"),
           ("concepts.png", "Relevance masks propagated from annotations (paper Fig 8)"),
           ("mask_quality.png", "Propagated masks: relevance on the planted marker vs the "
                                "template region (training images)"),
           ("training.png", "Training curves"),
           ("patch_maps.png", "Explanation maps per model (MedicalPatchNet Fig. 5 layout)"),
           ("segx_overlays.png", "Top 5% of the original and the SegX map per model x explainer "
                                 "(SegX Fig. 3 layout)"),
           ("risk_coverage.png", "SegU: risk-coverage of the predicted positives"))


def render_run(run_dir) -> Path:
    """Re-render summary.md, report.html and the figures of a run folder."""
    from . import figures
    run_dir = Path(run_dir)
    report = read_report(run_dir)
    names = variants(report)
    drawn = {}
    if names:
        drawn["roc.png"] = figures.plot_roc(report, names, run_dir / "roc.png")
        drawn["confusion.png"] = figures.plot_confusion(
            report, names, report.get("class_names") or ["0", "1"], run_dir / "confusion.png")
        drawn["gradcam_grid.png"] = figures.plot_gradcam_grid(
            run_dir, names, run_dir / "gradcam_grid.png",
            {n: report[n].get("saliency", "gradcam") for n in names},
            {n: report[n].get("audit", {}).get("map_template_correlation", {}).get("estimate")
             for n in names})
        drawn["training.png"] = figures.plot_training(report, names, run_dir / "training.png")
        drawn["concepts.png"] = figures.plot_run_concepts(report, run_dir, names,
                                                          run_dir / "concepts.png")
        drawn["mask_quality.png"] = figures.plot_mask_quality(report, run_dir / "mask_quality.png")
        drawn["patch_maps.png"] = figures.plot_map_rows(run_dir, names, run_dir / "patch_maps.png")
    if "segx" in report:              # the SegX study's own figures (its method folder's)
        from ..methods.segmenter.report import plot_risk_coverage, plot_segx_overlays
        drawn["segx_overlays.png"] = plot_segx_overlays(run_dir, run_dir / "segx_overlays.png")
        drawn["risk_coverage.png"] = plot_risk_coverage(report, run_dir / "risk_coverage.png")
    # a figure a run cannot draw is not left over from an earlier rendering, nor listed
    for name, ok in drawn.items():
        if not ok:
            (run_dir / name).unlink(missing_ok=True)
    (run_dir / "summary.md").write_text(summary_markdown(
        report, [name for name, _ in FIGURES if drawn.get(name)]))
    write_html(report, run_dir, FIGURES)
    return run_dir


__all__ = ["FIGURES", "clean", "read_report", "render_run", "summary_markdown", "write_json"]
