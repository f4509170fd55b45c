"""What the real-data presets share."""
from ..config import StudyConfig, make_smoke
from . import benchmark


def real_data(name: str, size: int, template: str | None, compactness: float,
              robustness: tuple, smoke: bool) -> StudyConfig:
    """The main job's training settings on a real dataset: GFSR from concept masks propagated
    from annotations (templates unless --annotations is given)."""
    c = benchmark.get_config()
    c.name, c.requires_data_dir = name, True
    c.benchmark.image_size = size
    c.variant("gfsr").options["mask_source"] = "annotations"
    c.annotation_template = template
    c.concepts.compactness = compactness
    c.robustness = robustness
    return make_smoke(c) if smoke else c
