"""Greedy layer-wise pretraining of the first convolution (``train.first_layer: autoencoder_*``).

The lecture's item (Lee et al. 2009, "Convolutional deep belief networks"; Goodfellow et al.
2016, §9.9): train the first layer in isolation with an unsupervised criterion, then extract
its features once and train what comes after on them. Here the criterion is a convolutional
autoencoder (Masci et al. 2011): the network's own first convolution (with its activation)
encodes, a transposed convolution of the same kernel size decodes, and the mean squared error
against the layer's input is minimised. No label is read. Afterwards the decoder is dropped
and the encoder's kernel stays in the network, frozen or fine-tuned by the supervised stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from convflow.components.train.spec import PretrainParams
from keras import layers


@dataclass
class Pretrained:
    """What pretraining did: the reconstruction error per epoch, and the kernel's change."""

    losses: list[float]
    kernel_change: float  # ||K_after - K_before|| / ||K_before||


def _layer_inputs(model, conv, images: np.ndarray) -> np.ndarray:
    """What ``conv`` sees: ``images`` through the layers before it (LeNet's zero padding)."""
    if conv.input is model.inputs[0]:
        return images
    stem = keras.Model(model.inputs, conv.input, name=f"{conv.name}_stem")
    return stem.predict(images, batch_size=512, verbose=0)


def autoencoder(model, conv_name: str, images: np.ndarray, params: PretrainParams, seed: int):
    """Trains ``model``'s layer ``conv_name`` alone as the encoder of an autoencoder.

    Args:
        model: the functional network; its layer ``conv_name`` (a 2-D convolution, the
            zoo's ``ModelSpec.first_conv``) is trained in place; nothing else changes.
        conv_name: the first convolution's layer name.
        images: (N, H, W, C) training images as the network takes them. No labels.
        params: epochs, learning rate, how many images.
        seed: seeds the decoder's initialization and the shuffling.

    Returns:
        :class:`Pretrained`.

    Raises:
        ValueError: ``conv_name`` is not a 2-D convolution of ``model``.
    """
    conv = model.get_layer(conv_name)
    if not isinstance(conv, layers.Conv2D):
        raise ValueError(f"{model.name}.{conv_name} is {type(conv).__name__}, not a Conv2D")
    images = np.asarray(images[: params.max_images], dtype="float32")
    # The layer's input is computed once; it is the reconstruction target.
    targets = _layer_inputs(model, conv, images)  # (N, H', W', C_in)
    before = np.array(conv.kernel)
    conv.trainable = True  # the caller freezes it (or not) afterwards
    decoder = layers.Conv2DTranspose(
        targets.shape[-1],
        conv.kernel_size,
        strides=conv.strides,
        padding=conv.padding,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name=f"{conv_name}_decoder",
    )
    # conv.output is the layer's node in ``model``: the autoencoder shares its weights.
    net = keras.Model(model.inputs, decoder(conv.output), name=f"{conv_name}_autoencoder")
    net.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss="mse")
    history = net.fit(
        images,
        targets,
        batch_size=128,
        epochs=params.epochs,
        shuffle=True,
        verbose=0,
    )
    after = np.array(conv.kernel)
    change = float(np.linalg.norm(after - before) / max(np.linalg.norm(before), 1e-12))
    return Pretrained([float(v) for v in history.history["loss"]], change)
