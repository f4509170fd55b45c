"""gfsr export: a TF Serving SavedModel (serving_default + explain) from a saved classifier."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("export", help="TF Serving SavedModel (serving_default + explain)")
    p.add_argument("--model", required=True, help="a .keras classifier")
    p.add_argument("--out", required=True, help="SavedModel folder, e.g. serving/gfsr/1")
    p.add_argument("--layer", help="Grad-CAM layer of the explain signature")
    p.add_argument("--channels", type=int, choices=(1, 3), help="channels clients send")
    p.set_defaults(func=run)


def run(args):
    from ..export import export_saved_model
    from .common import load_model_and_card
    model, card = load_model_and_card(args.model)
    path = export_saved_model(model, args.out, layer=args.layer or card.get("target_layer"),
                              class_names=card.get("class_names"),
                              channels=args.channels or card.get("channels"),
                              preprocessor=card.get("preprocessor", "resnet50_caffe"))
    print(f"SavedModel with signatures serving_default and explain: {path}")
    return path
