"""What the real-data presets share."""
from ..config import StudyConfig, make_smoke


def real_data(name: str, size: int, template: str | None, compactness: float,
              robustness: tuple, smoke: bool) -> StudyConfig:
    """Baseline vs GFSR (the paper's relevance loss, exact step, Grad-CAM at conv2_block3_out,
    8 epochs) towards concept masks propagated from annotations (templates unless
    --annotations is given). The benchmark's guided configuration (counterfactual
    backgrounds) is not used here: it was measured on the benchmark only."""
    c = StudyConfig(name=name, requires_data_dir=True)
    c.model.target_layer = "conv2_block3_out"
    c.benchmark.image_size = size
    c.variant("gfsr").options["mask_source"] = "annotations"
    c.annotation_template = template
    c.concepts.compactness = compactness
    c.robustness = robustness
    return make_smoke(c) if smoke else c
