"""PneumoniaMNIST / Kermany at 64 px: lung-field templates, compactness 0.2 (chest X-ray), the
top-left corner crop (where laterality markers sit) as robustness test."""
from .common import real_data


def get_config(smoke: bool = False):
    return real_data("pneumoniamnist_gfsr", 64, "lung_fields", 0.2, ("marker_cropped",), smoke)
