"""Explain throughput: our batched in-graph Grad-CAM (`gfsr_tf.explain`, one traced tf.function)
against tf-keras-vis `Gradcam` on the same ResNet50 classifier, images and layer, in one process.
The first (tracing) call of each is reported separately and excluded from the timed repeats.

    python benchmarks/explain.py --size 128 --images 256
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--layer", default="conv3_block4_out")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    from gfsr_tf import build_classifier, explain, preprocess
    from gfsr_tf.config import BenchmarkConfig
    from gfsr_tf.datasets.synthetic import make_split
    data = make_split(BenchmarkConfig(image_size=args.size), "test_decorrelated", args.images)
    x = preprocess(data.images).numpy()
    model = build_classifier(2, (args.size, args.size, 3), weights=None, seed=0)
    cls = np.ones(args.images, np.int32)
    tkv = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)

    def ours():
        return explain(model, x, layer=args.layer, class_index=cls, batch_size=args.batch).heatmaps

    def theirs():
        return np.concatenate([
            # seek_penultimate_conv_layer=False: otherwise tf-keras-vis silently moves from an
            # Activation layer such as conv3_block4_out to the conv layer before it
            tkv(BinaryScore(1.0), x[i:i + args.batch], penultimate_layer=args.layer,
                seek_penultimate_conv_layer=False)
            for i in range(0, args.images, args.batch)])

    result = {"image_size": args.size, "images": args.images, "batch": args.batch,
              "layer": args.layer}
    for name, fn in (("ours", ours), ("tf_keras_vis", theirs)):
        t0 = time.perf_counter()
        maps = fn()
        result[f"{name}_first_call_s"] = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        result[f"{name}_images_per_s"] = args.images / min(times)
        result[f"{name}_maps"] = maps
    # A speed-up is only worth it for the same maps. tf-keras-vis min-max normalises and upsamples
    # with scipy's zoom, we max-normalise and upsample bilinearly: compare by correlation.
    a = result.pop("ours_maps").reshape(args.images, -1)
    b = result.pop("tf_keras_vis_maps").reshape(args.images, -1)
    corr = [np.corrcoef(u, v)[0, 1] for u, v in zip(a, b) if u.std() > 0 and v.std() > 0]
    result["mean_map_correlation"] = float(np.mean(corr)) if corr else float("nan")
    result["explain_speedup_vs_tf_keras_vis"] = (result["ours_images_per_s"]
                                                 / result["tf_keras_vis_images_per_s"])
    for k, v in result.items():
        print(f"{k:36s} {v:.3f}" if isinstance(v, float) else f"{k:36s} {v}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"explain_{args.size}px.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
