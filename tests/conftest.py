import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def experiment(name: str):
    """experiments/<name>.py as a module, loaded from its file once per test session
    (experiments/ is a folder of scripts, not a package: no test edits sys.path)."""
    import importlib.util
    import sys
    key = f"gfsr_experiments.{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / "experiments" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def tiny_classifier(size=16, units=1, dtype="float32", final="activation"):
    """A small flat functional classifier shaped like ours: conv -> 'target' -> pool -> logits."""
    keras.utils.set_random_seed(1)
    # dtype may be a policy ("mixed_float16"): layers compute in float16, inputs stay float32
    inputs = keras.Input((size, size, 3), dtype="float32" if dtype == "mixed_float16" else dtype)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="tanh", dtype=dtype)(inputs)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="target", dtype=dtype)(x)
    # a non-linearity after the target, so d logit / d target depends on the weights (as in
    # ResNet stages 4-5) and the exact Grad-CAM has a second-order term
    x = keras.layers.Conv2D(3, 1, activation="tanh", dtype=dtype)(x)
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype)(x)
    if final == "activation":
        x = keras.layers.Dense(units, name="logits", dtype=dtype)(x)
        out = keras.layers.Activation("sigmoid" if units == 1 else "softmax", dtype=dtype)(x)
    else:
        out = keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax",
                                 dtype=dtype)(x)
    return keras.Model(inputs, out)


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present (developer/CI data only)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smoke_report(tmp_path_factory):
    """The main job's smoke run (experiments/pneumonia_gfsr.py --smoke), made once per session and
    shared by the study, command-line and report tests: (report dict, run folder)."""
    out = tmp_path_factory.mktemp("runs")
    report = experiment("pneumonia_gfsr").main(["--smoke", "--out", str(out), "--quiet"])
    return report, out / "pneumonia_gfsr_smoke"


def gfsr_console(*args, timeout=300):
    """The installed `gfsr` console script (the wrapper pip wrote beside this Python), run as a
    user runs it: in a fresh process."""
    import subprocess
    import sys
    script = Path(sys.executable).parent / "gfsr"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=timeout)
