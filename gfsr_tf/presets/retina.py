"""The paper's retina setting: 128 px, compactness 10, fundus-disc annotations, selective blur
outside the fundus centre (paper 4.3.2)."""
from .common import real_data


def get_config(smoke: bool = False):
    return real_data("retina_gfsr", 128, "fundus_disc", 10.0, ("selective_blur",), smoke)
