"""GuidedModel.fit under a 2-replica MirroredStrategy (logical CPUs, set before TensorFlow starts:
hence its own process) and with jit_compile=True: the same losses and weights as a plain run, to
round-off. Run by tests/methods/gfsr/test_guided_model.py."""
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()]*2)
import numpy as np, keras, gfsr_tf
S=24
def small():
    keras.utils.set_random_seed(0)
    i=keras.Input((S,S,3)); h=keras.layers.Conv2D(6,3,padding="same",activation="relu",name="features")(i)
    h=keras.layers.GlobalAveragePooling2D()(h); return keras.Model(i, keras.layers.Dense(2, activation="softmax")(h))
rng=np.random.default_rng(0); x=rng.normal(0,1,(16,S,S,3)).astype("float32"); y=rng.integers(0,2,16)
m=np.zeros((16,S,S),"float32"); m[:,:, :12]=1
ds=lambda: tf.data.Dataset.from_tensor_slices(({"image":x,"mask":m},y)).batch(8)
# plain
g=gfsr_tf.GuidedModel(small(), layer="features"); g.compile(optimizer=keras.optimizers.SGD(0.1))
h0=g.fit(ds(), epochs=2, verbose=0).history; w0=[w.numpy() for w in g.classifier.weights]
# mirrored
strategy=tf.distribute.MirroredStrategy(["/cpu:0","/cpu:1"])
with strategy.scope():
    g2=gfsr_tf.GuidedModel(small(), layer="features"); g2.compile(optimizer=keras.optimizers.SGD(0.1))
h2=g2.fit(ds(), epochs=2, verbose=0).history
assert np.allclose(h0["loss"], h2["loss"], rtol=1e-5), (h0["loss"], h2["loss"])
assert max(np.abs(a - b.numpy()).max() for a, b in zip(w0, g2.classifier.weights)) < 1e-5
g3=gfsr_tf.GuidedModel(small(), layer="features"); g3.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
h3=g3.fit(ds(), epochs=2, verbose=0).history
assert np.allclose(h0["loss"], h3["loss"], rtol=1e-5), (h0["loss"], h3["loss"])
print("ok")
