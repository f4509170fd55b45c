"""What the presets share: the smoke sizes and the real-data studies."""
from ..config import BenchmarkConfig, StudyConfig, TrainConfig


def make_smoke(c: StudyConfig) -> StudyConfig:
    """Any study at tiny sizes (about a minute; for tests): 32 px, 1 epoch of 2 steps of 4
    images, random init. Real data is still read whole - give it a small fixture."""
    c.name, c.smoke = c.name + "_smoke", True
    c.benchmark = BenchmarkConfig(image_size=32, n_train=16, n_val=8, n_test=8)
    c.model.weights = None
    c.concepts.weights = None
    # the study's seed survives (rows seed0/1/2 of a smoke run train with their own seeds)
    c.train = TrainConfig(epochs=1, batch_size=4, steps_per_epoch=2, deterministic=True,
                          seed=c.train.seed)
    c.gradcam_examples = 2
    # a warm-up longer than the smoke run would leave every guidance term untested
    for variant in c.variants:
        for key in ("warmup_epochs", "ramp_epochs", "consistency_delay_epochs"):
            if variant.options.get(key):
                variant.options[key] = 0
    return c


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
