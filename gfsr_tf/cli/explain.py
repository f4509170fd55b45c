"""gfsr explain: heatmap overlays and predictions for image files, any Keras classifier."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

PREPROCESS_CHOICES = ("auto", "resnet50_caffe", "gfsr", "none", "unit", "tf", "torch")
# A prediction this close to 0 or 1 on most images usually means the pixels are not on the
# scale the model was trained on (0-255 fed to a [0, 1] model predicts p = 1.0 everywhere).
SATURATED = 0.999


def add_parser(sub):
    p = sub.add_parser("explain", help="heatmap overlays and predictions for images, any Keras "
                       "classifier (nested backbones included)")
    p.add_argument("--model", required=True, help="a .keras classifier")
    p.add_argument("inputs", nargs="+", help="image files or folders (PNG, JPEG, BMP, TIFF; "
                   "8/16-bit; gray, RGB, RGBA)")
    p.add_argument("--out", default="explanations")
    p.add_argument("--method", help="gradcam or layercam (ours, in-graph; default: the map the "
                   "model card says the model was trained towards, else gradcam), or for "
                   "comparison gradcam++, scorecam, smoothgrad (tf-keras-vis), lime, eigencam")
    p.add_argument("--layer", help="target layer (default: the model card's, else the last 4-D "
                   "layer - inside a nested backbone too)")
    p.add_argument("--class-index", type=int, help="class to explain (default: predicted)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="read images as 1 or 3 channels "
                   "(default: the model card's, else the model's input channels)")
    p.add_argument("--preprocess", default="auto", choices=PREPROCESS_CHOICES,
                   help="auto: the model card's preprocessor for gfsr_tf models, else none "
                   "(pixels 0-255); resnet50_caffe (alias gfsr): ResNet50 caffe; unit: "
                   "pixels/255; tf: [-1, 1] (MobileNet, Xception); torch: /255, ImageNet mean "
                   "and std (DenseNet)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def overlay(image, heatmap):
    import cv2
    import numpy as np
    rgb = image if image.shape[-1] == 3 else np.repeat(image, 3, -1)
    colour = cv2.applyColorMap((heatmap * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (0.55 * rgb + 0.45 * colour).round().astype(np.uint8)


def saturation_warning(probabilities, how: str) -> str | None:
    """One line when most predictions are saturated (max p >= SATURATED on over half the images,
    at least 2): the usual sign of pixels on the wrong scale."""
    import numpy as np
    top = np.asarray(probabilities).max(axis=1)
    n = int((top >= SATURATED).sum())
    if len(top) < 2 or n * 2 <= len(top):
        return None
    others = ", ".join(c for c in PREPROCESS_CHOICES if c not in ("auto", "gfsr", how))
    return (f"warning: {n} of {len(top)} predictions are saturated (p >= {SATURATED}) with "
            f"--preprocess {how}: the model may expect pixels on another scale; try "
            f"--preprocess one of {others}")


def run(args) -> list[dict]:
    import cv2
    import numpy as np
    from tqdm.auto import tqdm
    from ..datasets.images import image_files, load_images, read_image
    from ..saliency.cam_model import output_tensor
    from ..preprocessing import get_preprocessor
    from ..saliency import explain_posthoc
    from .common import load_model_and_card
    model, card = load_model_and_card(args.model)
    height, width, model_channels = model.input_shape[1:]
    channels = args.channels or card.get("channels") or model_channels
    n_outputs = int(output_tensor(model).shape[-1])
    names = card.get("class_names") or [str(c) for c in range(max(2, n_outputs))]
    paths = image_files(args.inputs)
    images = load_images(paths, (height, width), channels)
    flat = images.reshape(len(images), -1)
    constant = [p.name for p, row in zip(paths, flat) if row.min() == row.max()]
    if constant:
        print(f"warning: {len(constant)} image(s) are a single grey level ("
              f"{', '.join(constant[:3])}{', ...' if len(constant) > 3 else ''}): their "
              "predictions and maps carry no information", file=sys.stderr)
    how = {"auto": card.get("preprocessor", "none") if card else "none",
           "gfsr": "resnet50_caffe"}.get(args.preprocess, args.preprocess)
    x = np.asarray(get_preprocessor(how)(images))
    if x.shape[-1] != model_channels:
        raise ValueError(f"the model takes {model_channels} channels; these images have "
                         f"{x.shape[-1]} after preprocessing '{how}' (use --channels)")
    layer = args.layer or card.get("target_layer")
    # the map the model was trained towards (a LayerCAM-trained gfsr model: LayerCAM)
    args.method = args.method or card.get("saliency", "gradcam")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for start in tqdm(range(0, len(paths), args.batch_size), desc="explain",
                      disable=args.quiet):
        batch = slice(start, start + args.batch_size)
        exp = explain_posthoc(model, x[batch], args.method, layer=layer,
                              class_index=args.class_index, batch_size=args.batch_size)
        for j, path in enumerate(paths[batch]):
            png = out / f"{path.stem}_{args.method.replace('+', 'p')}.png"
            # the overlay at the image's own size (the heatmap upsampled to it), not the model's;
            # the file is read a second time here rather than kept from load_images, so a large
            # folder never holds every full-size original in memory at once
            original = read_image(path, channels)
            heat = cv2.resize(exp.heatmaps[j].astype(np.float32), original.shape[1::-1],
                              interpolation=cv2.INTER_LINEAR).clip(0, 1)
            cv2.imwrite(str(png), overlay(original, heat)[..., ::-1])
            rows.append({"file": str(path), "overlay": str(png),
                         "explained_class": names[int(exp.class_index[j])],
                         "predicted_class": names[int(exp.probabilities[j].argmax())],
                         # an all-zero map: no positive evidence at this layer (Grad-CAM's ReLU
                         # removed every cell), not "the model looks nowhere"
                         "heatmap_empty": bool(exp.heatmaps[j].max() <= 0),
                         **{f"p_{n}": float(p) for n, p in zip(names, exp.probabilities[j])}})
    with open(out / "predictions.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "predictions.json").write_text(json.dumps(rows, indent=2))
    print(f"{len(rows)} images explained ({args.method}, layer {layer or 'auto'}): "
          f"{out / 'predictions.csv'}")
    empty = sum(r["heatmap_empty"] for r in rows)
    if empty:
        print(f"warning: {empty} of {len(rows)} heatmaps are all zero (no cell with positive "
              "Grad-CAM evidence for the explained class at this layer; column heatmap_empty); "
              "try another --layer or --method", file=sys.stderr)
    saturated = saturation_warning([[r[f"p_{n}"] for n in names] for r in rows], how)
    if saturated and not card:
        print(saturated, file=sys.stderr)
    return rows
