"""The report: which GFSR configuration a run is, and `gfsr report` re-rendering a copied run from
its run folder alone (no models), the same summary, figures and stored maps."""
import json

import numpy as np
import pytest
from conftest import gfsr_console

from gfsr_tf.presets import preset


def test_report_says_which_gfsr_configuration_it_is():
    import dataclasses
    from gfsr_tf.methods.gfsr import RelevanceConfig, gfsr_configuration
    from gfsr_tf.methods.gfsr.describe import heading, old_run_note
    paper = dataclasses.asdict(RelevanceConfig())
    assert gfsr_configuration(paper, preset("paper").model.target_layer).startswith("paper-faithful")
    conv2 = gfsr_configuration(paper, "conv2_block3_out")
    assert "conv2_block3_out" in conv2 and "paper: 'conv3_block4_out'" in conv2
    main_job = preset("benchmark")
    layer = main_job.model.target_layer
    gfsr = gfsr_configuration({**paper, **main_job.variant("gfsr").options}, layer)
    # the main job's `gfsr` is the paper's loss; its one changed setting is the shared warm-up
    assert gfsr == ("the paper's method with changed settings: warmup_epochs 6 (paper: 0)")
    plus = main_job.variant("gfsr_plus").options
    assert gfsr_configuration({**paper, **plus}, layer).startswith(
        "extension beyond the paper: logit consistency under counterfactual backgrounds")
    assert heading(plus) == ("GFSR loss + logit consistency under counterfactual backgrounds "
                             "+ BatchNorm statistics re-estimated on the training images "
                             "+ penalty on negative evidence inside the mask (extension)")
    assert heading(main_job.variant("gfsr").options) == "GFSR (the paper's relevance loss)"
    # a run from before the honest names: `gfsr` with the relevance loss off is flagged
    old = {**paper, "weight": 0.0, "consistency_weight": 0.1, "warmup_epochs": 6}
    assert old_run_note("gfsr", old).startswith("**Old run:**")
    assert old_run_note("gfsr", plus) is None and old_run_note("gfsr_plus", old) is None
    assert heading(old).endswith("only, GFSR's relevance loss off (extension)")
    extension = dict(paper, input_gradient_weight=1.0)
    assert gfsr_configuration(extension, "conv3_block4_out").startswith("extension beyond the paper")
    layercam = {**plus, "saliency": "layercam"}
    assert heading(layercam).endswith("+ GFSR's loss on the LayerCAM (evaluated and explained "
                                      "with LayerCAM too) (extension)")
    assert gfsr_configuration({**paper, "saliency": "layercam"}, layer) == (
        "extension beyond the paper: GFSR's loss on the LayerCAM (evaluated and explained with "
        "LayerCAM too) (saliency layercam)")


def test_gfsr_report_rerenders_a_copied_run_without_its_models(smoke_report, tmp_path):
    import shutil
    _, run = smoke_report
    copy = tmp_path / "copied_run"
    shutil.copytree(run, copy)
    for f in list(copy.rglob("*.keras")) + [copy / n for n in (
            "summary.md", "report.html", "roc.png", "confusion.png", "gradcam_grid.png",
            "training.png")]:
        f.unlink()
    r = gfsr_console("report", str(copy))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (copy / "summary.md").read_text() == (run / "summary.md").read_text()
    for name in ("roc.png", "confusion.png", "gradcam_grid.png", "training.png"):
        assert (copy / name).stat().st_size > 1000, name
    page = (copy / "report.html").read_text()
    assert page.count("data:image/png;base64") == 4
    # the configuration is folded away, and long warnings wrap instead of running off the box
    assert "<details><summary>Configuration" in page and "overflow-wrap:anywhere" in page
    # the grid is drawn from the saved maps: the same true-class maps the report was made from
    maps = np.load(copy / "gfsr" / "explanations.npz")
    assert maps["examples/heatmaps"].shape == (2, 32, 32)
    assert {"test_decorrelated/conv2_block3_out", "test_decorrelated/conv3_block4_out"} <= \
        set(maps.files)
    # with each model's class templates (the audit's, tests/test_audit.py checks them by hand),
    # drawn as one more row per class below the examples
    assert maps["templates/heatmaps"].shape == (2, 32, 32)
    assert list(maps["templates/classes"]) == [0, 1]
    from matplotlib.image import imread
    from gfsr_tf.report.figures import plot_gradcam_grid
    names = [n for n in ("baseline", "gfsr", "gfsr_plus") if (copy / n).is_dir()]
    for n in names:
        saved = dict(np.load(copy / n / "explanations.npz"))
        np.savez(copy / n / "explanations.npz",
                 **{k: v for k, v in saved.items() if not k.startswith("templates/")})
    assert plot_gradcam_grid(copy, names, tmp_path / "without_templates.png")
    rows_high = imread(copy / "gradcam_grid.png").shape[0] / imread(
        tmp_path / "without_templates.png").shape[0]
    assert rows_high == pytest.approx((2.3 * 4 + 0.5) / (2.3 * 2 + 0.5), rel=0.1)
    # a model read with the LayerCAM it was trained towards: the map heading says which
    from gfsr_tf.report.markdown import summary_markdown
    assert "## Grad-CAM localization (true class" in (copy / "summary.md").read_text()
    report = json.loads((copy / "report.json").read_text())
    assert report["gfsr"]["saliency"] == "gradcam"
    report["gfsr"]["saliency"] = "layercam"
    summary = summary_markdown(report)
    assert "## Grad-CAM (LayerCAM for gfsr) localization (true class" in summary
    assert "Maps: true-class Grad-CAM (LayerCAM for gfsr: the map it was trained towards), " \
        "inference mode" in summary
    r = gfsr_console("audit", "--model", str(run / "baseline" / "best.keras"), "--out", str(tmp_path),
              "--name", "aud")
    assert r.returncode == 0, r.stderr[-2000:]
    # a saved model audited trains nothing: no Training table, no empty training.png, only the
    # figures written are listed, and the command says where it wrote
    assert f"audit: {tmp_path / 'aud' / 'audit.json'}" in r.stdout
    summary = (tmp_path / "aud" / "summary.md").read_text()
    assert "## Training" not in summary and not (tmp_path / "aud" / "training.png").exists()
    listed = summary.rsplit("Figures: ", 1)[1].split(";")[0]
    names = [] if listed == "none" else [n.strip("`") for n in listed.split(", ")]
    assert "training.png" not in names
    assert all((tmp_path / "aud" / name).exists() for name in names)
    assert sorted(names) == sorted(p.name for p in (tmp_path / "aud").glob("*.png"))
    audit = json.loads((tmp_path / "aud" / "audit.json").read_text())
    stored = json.loads((run / "report.json").read_text())["baseline"]["audit"]
    assert audit["within_class_marker_auc"] == stored["within_class_marker_auc"]
    assert audit["marker_effect_removal"]["estimate"] == pytest.approx(
        stored["marker_effect_removal"]["estimate"], abs=1e-6)
    r = gfsr_console("report", str(tmp_path / "nothing"))
    assert r.returncode == 1 and "run folder not found" in r.stderr


def _section(decor, corr, marker_auc, ratio, hit_all, empty, fooling, deletion, insertion):
    """A benchmark model's report section with only the figures the verdict reads."""
    flip = {"flip_rate": 0.0, "among_marked": {"flip_rate": 0.0}}
    return {"metrics": {"test_correlated": {"accuracy": corr, "auc": 0.9},
                        "test_decorrelated": {"accuracy": decor, "auc": 0.9}},
            "robustness": {"marker_removed": flip, "marker_cropped": flip},
            "localization": {"lesion_hit_rate": 0.5, "lung_hit_rate": 0.5,
                             "lung_hit_rate_all": hit_all, "all_zero_maps": empty},
            "audit": {"within_class_marker_auc": {"mean": marker_auc},
                      "marker_to_lesion_ratio": ratio, "cam_fooling_rate": fooling,
                      "deletion_per_image": deletion, "insertion_per_image": insertion},
            "training": {"seconds": 60.0, "history": [{"relevance": 0.1}]}}


def test_verdict_judges_each_goal_against_hand_made_models():
    from gfsr_tf.evaluators.comparison import compare_faithfulness
    from gfsr_tf.methods.gfsr.describe import verdict, verdict_markdown
    base = _section(0.70, 0.93, 0.95, 1.0, 0.40, 0.10, 0.10, [0.5] * 4, [0.6] * 4)
    # meets every goal: AUC 0.58, ratio 0.1 <= 0.15, hit 0.92, no empty map, no fooling,
    # deletion 0.01 lower and insertion 0.01 higher than the baseline's on every image,
    # decorrelated +0.2, correlated -0.01
    good = _section(0.90, 0.92, 0.58, 0.10, 0.92, 0.0, 0.0, [0.49] * 4, [0.61] * 4)
    # each goal missed by a little: AUC 0.61, hit 0.89, deletion +0.03, correlated -0.03
    near = _section(0.90, 0.90, 0.61, 0.10, 0.89, 0.0, 0.0, [0.53] * 4, [0.61] * 4)
    report = {"baseline": base, "good": good, "near": near}
    report["comparisons"] = {n: {"faithfulness": compare_faithfulness(report[n], base)}
                             for n in ("good", "near")}
    rows = {r["model"]: r for r in verdict(report)}
    assert "met" not in rows["baseline"]
    assert rows["good"]["met"] == {"decision": True, "anatomy": True, "faithful": True,
                                   "accuracy": True}
    assert rows["near"]["met"] == {"decision": False, "anatomy": False, "faithful": False,
                                   "accuracy": False}
    assert rows["near"]["deletion_difference"]["estimate"] == pytest.approx(0.03)
    # the diagnostic beside it: a model surer of the unmodified images (start 0.9 against 0.7)
    # whose deletion AUC is 0.03 worse removes 0.17 more probability
    base["audit"]["deletion_start_per_image"] = [0.7] * 4
    near["audit"]["deletion_start_per_image"] = [0.9] * 4
    drop = compare_faithfulness(near, base)["deletion_drop_difference"]
    assert drop["estimate"] == pytest.approx((0.9 - 0.53) - (0.7 - 0.5))
    assert "deletion_drop_difference" not in compare_faithfulness(good, base)  # no start: none
    text = "\n".join(verdict_markdown(report))
    assert "| good | 0.580 | 0.100 | yes | 0.920 | 0.000 | 0.000 | yes |" in text
    assert "Caution on the deletion" not in text      # no curve ends recorded (older runs)
    # the deletion's removal read as pneumonia (the fully blurred image keeps p(pneumonia) high
    # on pneumonia images: 0.9 and 0.7 -> mean 0.80), not as normal (0.2 and 0.4 -> 0.30)
    report.update(class_names=["normal", "pneumonia"],
                  data={"test_decorrelated": {"labels": [0, 1, 0, 1, 1]}})
    base["audit"].update(split="test_decorrelated", deletion_end_per_image=[0.2, 0.9, 0.4, 0.7],
                         lesion_replaced_change={"estimate": -0.01, "ci_low": -0.02,
                                                 "ci_high": 0.0})
    good["audit"]["deletion_end_per_image"] = [0.1, 0.95, 0.1, 0.95]
    caution = [line for line in verdict_markdown(report) if "Caution" in line]
    assert len(caution) == 1
    assert "read as pneumonia. With every pixel blurred, baseline gives the 2 pneumonia images " \
        "of the deletion p(pneumonia) = 0.80 on average (good 0.95)" in caution[0]
    assert "by -0.010 [-0.020, +0.000]: the blur leaves the lesions in place." in caution[0]
    base["audit"]["deletion_end_per_image"] = [0.2, 0.3, 0.4, 0.1]      # removed: no caution
    assert not [line for line in verdict_markdown(report) if "Caution" in line]
    # deletion / insertion towards the lesion-free twin, paired per lesion image (not a goal)
    assert not [line for line in verdict_markdown(report) if "lesion-free twin" in line]
    base["audit"].update(lesion_twin_images=2, lesion_twin_deletion_per_image=[0.6, 0.4],
                         lesion_twin_insertion_per_image=[0.5, 0.7])
    good["audit"].update(lesion_twin_deletion_per_image=[0.5, 0.2],
                         lesion_twin_insertion_per_image=[0.6, 0.7])
    faith = compare_faithfulness(good, base)
    assert faith["lesion_twin_deletion_auc_difference"]["estimate"] == pytest.approx(-0.15)
    assert faith["lesion_twin_insertion_auc_difference"]["estimate"] == pytest.approx(0.05)
    report["comparisons"]["good"]["faithfulness"] = faith
    twin = [line for line in verdict_markdown(report) if "lesion-free twin" in line]
    assert len(twin) == 1 and "the 2 lesion images" in twin[0]
    assert "good -0.150 [-0.200, -0.100] / +0.050 [+0.000, +0.100]." in twin[0]
    # the share of the lesion's effect the map leaves, (AUC - end) / (start - end), paired where
    # the lesion moves both decisions by >= 0.2: image 1 only (the baseline's image 2 moves 0.1)
    base["audit"].update(lesion_twin_start_per_image=[0.9, 0.5],
                         lesion_twin_end_per_image=[0.1, 0.4])
    good["audit"].update(lesion_twin_start_per_image=[0.9, 0.9],
                         lesion_twin_end_per_image=[0.1, 0.1])
    share = compare_faithfulness(good, base)["lesion_twin_remaining_share_difference"]
    assert share["n"] == 1
    assert share["estimate"] == pytest.approx((0.5 - 0.1) / 0.8 - (0.6 - 0.1) / 0.8)
    report["comparisons"]["good"]["faithfulness"] = compare_faithfulness(good, base)
    twin = [line for line in verdict_markdown(report) if "lesion-free twin" in line][0]
    assert "share of the lesion's effect its map leaves -0.125 [-0.125, -0.125] (n = 1)" in twin
    # does the map depend on the image? (the audit's template figures, as written into the line)
    assert not [line for line in verdict_markdown(report) if "class template" in line]
    good["audit"].update(
        map_template_correlation={"estimate": 0.98, "ci_low": 0.97, "ci_high": 0.99},
        lesion_twin_template_deletion_difference={"estimate": 0.04, "ci_low": 0.02,
                                                  "ci_high": 0.06},
        lesion_twin_template_share_difference={"estimate": 0.05, "ci_low": 0.03,
                                               "ci_high": 0.09, "n": 91})
    template = [line for line in verdict_markdown(report) if "class template" in line]
    assert len(template) == 1 and template[0].endswith(
        "good r = 0.980 [0.970, 0.990], deletion +0.040 [+0.020, +0.060], share +0.050 "
        "[+0.030, +0.090] (n = 91).")
    assert "baseline r =" not in template[0]       # no template figures: not listed
    # no twins (real data): no verdict
    del base["robustness"]["marker_removed"]
    assert verdict(report) == []


def test_an_old_run_whose_gfsr_had_the_relevance_loss_off_renders_and_says_so(smoke_report,
                                                                               tmp_path):
    """Runs from before the honest names (their `gfsr` = consistency only, weight 0) still render
    with `gfsr report`, and the report tells the reader which `gfsr` it is."""
    import shutil
    from gfsr_tf.report import render_run
    _, run = smoke_report
    old = tmp_path / "old_run"
    shutil.copytree(run, old)
    report = json.loads((old / "report.json").read_text())
    report["gfsr"]["training"]["relevance"] = dict(
        report["gfsr"]["training"]["relevance"], weight=0.0, consistency_weight=0.1)
    del report["gfsr_plus"]
    (old / "report.json").write_text(json.dumps(report))
    render_run(old)
    summary = (old / "summary.md").read_text()
    assert "**Old run:** this `gfsr` was trained with GFSR's relevance loss switched off" in summary
    assert "## gfsr: logit consistency under counterfactual backgrounds only, GFSR's relevance " \
        "loss off (extension)" in summary
    assert "gfsr_plus" not in summary.split("## Verdict")[1].split("##")[0]


def test_panel_titles_are_wrapped_never_cut_and_map_panels_carry_a_colour_bar(tmp_path,
                                                                             monkeypatch):
    """Titles were cut at 30-34 characters ("gradcam++@conv5_block3_o", SegX's "original" /
    "SegX" labels gone) and the patch / gaze panels had no colour bar."""
    from gfsr_tf.report import figures
    from gfsr_tf.report.basics import save_figure, wrap_title
    for title in ("patchnet: gradcam++@conv5_block3_out", "resnet50 gradcam@conv3_block4_out "
                  "original", "congestive heart failure"):
        wrapped = wrap_title(title, 18)
        assert wrapped.replace("\n", "").replace(" ", "") == title.replace(" ", "")
        assert max(len(line) for line in wrapped.splitlines()) <= 18
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 16, 16, 1)).astype(np.uint8)
    for name, maps in (("patchnet", {"maps/signed_raw": rng.normal(size=(2, 16, 16))}),
                       ("baseline", {"maps/gradcam++@conv5_block3_out": rng.random((2, 16, 16))})):
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / "explanations.npz", **{"maps/images": images, **maps})
    drawn = {}

    def keep(fig, path):
        drawn["titles"] = [ax.get_title() for ax in fig.axes]
        drawn["bars"] = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
        return save_figure(fig, path)

    monkeypatch.setattr(figures, "save_figure", keep)
    assert figures.plot_map_rows(tmp_path, ["patchnet", "baseline"], tmp_path / "maps.png")
    assert (tmp_path / "maps.png").stat().st_size > 5_000
    # one colour bar per scale: the normalised maps (jet) and the signed patch map (red-blue)
    assert len(drawn["bars"]) == 2 and any("normalised" in b for b in drawn["bars"])
    assert "baseline: gradcam++@\nconv5_block3_out" in drawn["titles"]


def test_masks_from_position_aware_concepts_are_named_an_extension(smoke_report, tmp_path):
    """A run whose concepts saw the segments' positions says so under "Relevance masks"; one
    with the paper's concepts does not."""
    import shutil
    from gfsr_tf.report import render_run
    _, run = smoke_report
    old = tmp_path / "run"
    shutil.copytree(run, old)
    report = json.loads((old / "report.json").read_text())
    masks = {"annotator": "template", "note": "drawn by rule", "source": "template",
             "n_annotated_segments": 40, "n_annotated_images": 10, "concept_scores": [1.0, 0.5],
             "timings": {"images_per_s": 50.0}, "cached": False}
    for weight, named in ((16.0, True), (0.0, False)):
        report["masks"] = dict(masks, config={"k": 15, "position_weight": weight})
        (old / "report.json").write_text(json.dumps(report))
        render_run(old)
        summary = (old / "summary.md").read_text()
        assert ("**Concepts with position (extension, not the paper):**" in summary) == named
        assert ("with weight 16 before k-means (k = 15)" in summary) == named
