"""LIME's Husky-vs-Wolf (snow background bias): 224 px, natural-image compactness 10; GFSR needs
annotated "useful segments" (--annotations: a JSON {image stem: [SLIC segment ids]} or a mask
folder); robustness: the periphery (where the snow is) replaced."""
from .common import real_data


def get_config(smoke: bool = False):
    return real_data("husky_wolf_gfsr", 224, None, 10.0, ("periphery_replaced",), smoke)
