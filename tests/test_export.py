import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_classifier

from gfsr_tf import explain, preprocess
from gfsr_tf.export import export_saved_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_classifier(size=16)
    path = export_saved_model(model, tmp_path_factory.mktemp("export") / "sm", layer="target",
                              class_names=["normal", "pneumonia"], channels=1)
    return model, path


def test_signatures_in_a_fresh_process_match_the_keras_model(exported, tmp_path):
    model, path = exported
    pixels = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", pixels)
    code = f"""
import numpy as np, tensorflow as tf, sys
m = tf.saved_model.load(r'{path}')
x = tf.constant(np.load(r'{tmp_path / 'x.npy'}'))
p = m.signatures['serving_default'](images=x)['probabilities'].numpy()
e = m.signatures['explain'](images=x)
np.savez(r'{tmp_path / 'out.npz'}', p=p, h=e['heatmap'].numpy(), c=e['predicted_class'].numpy())
assert 'gfsr_tf' not in sys.modules
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = np.load(tmp_path / "out.npz")
    p1 = model(preprocess(pixels)).numpy()[:, 0]
    np.testing.assert_allclose(out["p"], np.stack([1 - p1, p1], 1), atol=1e-5)
    reference = explain(model, preprocess(pixels).numpy(), layer="target")
    np.testing.assert_array_equal(out["c"], reference.class_index)
    np.testing.assert_allclose(out["h"], reference.heatmaps, atol=1e-5)
    meta = json.loads((path / "signatures.json").read_text())
    assert meta["class_names"] == ["normal", "pneumonia"] and meta["input"]["shape"] == [None, 16, 16, 1]


def test_wrong_shape_dtype_or_channels_are_rejected(exported):
    _, path = exported
    m = tf.saved_model.load(str(path))
    fn = m.signatures["serving_default"]
    for bad in (tf.zeros((1, 20, 16, 1)), tf.zeros((1, 16, 16, 3))):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"shaped \(N, 16, 16, 1\)"):
            fn(images=bad)
        with pytest.raises(tf.errors.InvalidArgumentError, match="shaped"):
            m.signatures["explain"](images=bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        fn(images=tf.zeros((1, 16, 16, 1), tf.uint8))


def test_saved_model_cli_lists_both_signatures(exported):
    _, path = exported
    cli = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
                          "--dir", str(path), "--all"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    for text in ("signature_def['serving_default']", "signature_def['explain']", "heatmap",
                 "predicted_class", "DT_FLOAT"):
        assert text in cli.stdout


def test_grpc_predict_request_matches_the_exported_contract(exported):
    """TF Serving's gRPC contract, built with the tensorflow-serving-api protos (the model server
    binary is not available here): the request's signature name, input key and dtype are the
    exported ones, and the tensors it carries produce the documented outputs."""
    predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    model, path = exported
    loaded = tf.saved_model.load(str(path))
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 1)).astype(np.float32)
    for name, outputs in (("serving_default", {"probabilities"}),
                          ("explain", {"probabilities", "predicted_class", "heatmap"})):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "gfsr"
        request.model_spec.signature_name = name
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(pixels))
        request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # the wire
        signature = loaded.signatures[request.model_spec.signature_name]
        (key, spec), = signature.structured_input_signature[1].items()
        assert key in request.inputs and tf.as_dtype(request.inputs[key].dtype) == spec.dtype
        result = signature(**{k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        assert set(result) == outputs
    probs = model.predict(preprocess(pixels).numpy(), verbose=0)[:, 0]
    np.testing.assert_allclose(result["probabilities"].numpy()[:, 1], probs, rtol=1e-4, atol=1e-6)
    assert result["heatmap"].shape == (2, 16, 16)


def test_bad_arguments_leave_nothing_behind_and_a_rerun_replaces_the_export(tmp_path):
    model = tiny_classifier(size=16)
    target = tmp_path / "serving" / "1"
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        export_saved_model(model, target, layer="target", class_names=["a", "b", "c"])
    assert not any(tmp_path.rglob("*"))  # not even the parent folder
    export_saved_model(model, target, layer="target", class_names=["a", "b"])
    (target / "stale.txt").write_text("from an older export")
    export_saved_model(model, target, layer="target", class_names=["x", "y"])
    assert not (target / "stale.txt").exists()
    assert json.loads((target / "signatures.json").read_text())["class_names"] == ["x", "y"]
    assert sorted(p.name for p in (tmp_path / "serving").iterdir()) == ["1"]  # no temp folders
