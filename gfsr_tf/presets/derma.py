"""The paper's dermatology setting (DermaMNIST-C / HAM10000): 224 px, compactness 25, lesion
annotations, peripheral replacement by a reference background."""
from .common import real_data


def get_config(smoke: bool = False):
    return real_data("derma_gfsr", 224, "central_lesion", 25.0, ("periphery_replaced",), smoke)
