"""TFDS builders for the real datasets, prepared from files the user downloaded (nothing is
fetched): `tfds.load("gfsr_pneumonia", download_and_prepare_kwargs={"download_config":
tfds.download.DownloadConfig(manual_dir=...)})` after `import gfsr_tf.datasets.tfds_builders`.

They read through the same loaders as the rest of the library (one way through the data), so the
TFDS splits are exactly the ones `load_kermany` / `load_medmnist` return.
"""
from __future__ import annotations

import tensorflow_datasets as tfds

from .kermany import load_kermany
from .medmnist import CLASS_NAMES, load_medmnist


class _FromImageSets(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared by the builders: examples straight from an ImageSet."""

    def _generate_examples(self, image_set):
        for i, (image, label) in enumerate(zip(image_set.images, image_set.labels)):
            name = image_set.names[i] if image_set.names else str(i)
            yield f"{i:06d}_{name}", {"image": image, "label": int(label), "name": name}


class GfsrPneumonia(_FromImageSets):
    """Kermany chest X-rays (pneumonia vs normal) at 128 px, grayscale; validation carved from
    train patient-grouped and stratified (seed 0, 10 %) as `datasets.kermany.load_kermany` does."""

    VERSION = tfds.core.Version("1.0.0")
    IMAGE_SIZE = 128
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download the Kermany chest X-ray set (e.g. Mendeley Data doi:10.17632/rscbjbr9sj.2 or the
    Kaggle "chest-xray-pneumonia" copy) and point manual_dir at the folder that holds
    chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg.
    """

    def _info(self):
        size = self.IMAGE_SIZE
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 1)),
                "label": tfds.features.ClassLabel(names=["normal", "pneumonia"]),
                "name": tfds.features.Text()}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        data = load_kermany(dl_manager.manual_dir, self.IMAGE_SIZE)
        return {split: self._generate_examples(image_set) for split, image_set in data.items()}


class GfsrRetinamnist(_FromImageSets):
    """RetinaMNIST (MedMNIST v2 npz, official splits), ordinal grades 0-4, RGB."""

    VERSION = tfds.core.Version("1.0.0")
    FILE = "retinamnist.npz"
    CLASSES = CLASS_NAMES["retinamnist"]
    IMAGE_SHAPE = (28, 28, 3)
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download retinamnist.npz (https://zenodo.org/records/10519652) into manual_dir.
    """

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=self.IMAGE_SHAPE),
                "label": tfds.features.ClassLabel(names=list(self.CLASSES)),
                "name": tfds.features.Text()}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        data = load_medmnist(dl_manager.manual_dir / self.FILE)
        return {split: self._generate_examples(image_set) for split, image_set in data.items()}


class GfsrPneumoniamnist(GfsrRetinamnist):
    """PneumoniaMNIST (MedMNIST v2 npz, official splits), grayscale."""

    FILE = "pneumoniamnist.npz"
    CLASSES = CLASS_NAMES["pneumoniamnist"]
    IMAGE_SHAPE = (28, 28, 1)
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download pneumoniamnist.npz (https://zenodo.org/records/10519652) into manual_dir.
    """
