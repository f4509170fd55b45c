"""EGD-CXR (Normal / CHF / pneumonia): GFSR pulled towards the radiologists' gaze heatmaps (the
eye-gaze supervision setting), 224 px, top-left corner crop as robustness test."""
from .common import real_data


def get_config(smoke: bool = False):
    c = real_data("egd_cxr_gfsr", 224, None, 0.2, ("marker_cropped",), smoke)
    c.variant("gfsr").options["mask_source"] = "gaze"
    return c
