"""The main job at tiny sizes (about a minute; for tests)."""
from . import benchmark


def get_config(smoke: bool = True):
    return benchmark.get_config(smoke=True)
