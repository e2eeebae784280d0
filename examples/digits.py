"""Handwritten digits (scikit-learn's bundled 8x8 set, no download) with a small CNN.

    python -m examples.digits [--policy mixed-bf16] [--optimizer adam|momentum|thor]
                              [--epochs N] [--mnist PATH]

``--mnist PATH`` trains on MNIST from a local ``mnist.npz`` (keys x_train, y_train, x_test,
y_test, as Keras ships it) instead; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sciml.nn as nn
import sciml.optim as optim


def load_digits(seed=0, test_fraction=0.25):
    """(x_train, y_train, x_test, y_test): images (N, 1, 8, 8) float32 in [0, 1], int64 labels."""
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    te, tr = idx[:n_test], idx[n_test:]
    return x[tr], y[tr], x[te], y[te]


def load_mnist(path):
    with np.load(path) as f:
        xs = [(f[k] / 255.0).astype(np.float32)[:, None] for k in ("x_train", "x_test")]
        return xs[0], f["y_train"].astype(np.int64), xs[1], f["y_test"].astype(np.int64)


def make_cnn(side=8, classes=10, width=16, seed=0):
    """conv(1->w) relu, conv(w->2w) relu, maxpool 2, dense(->64) relu, dense(->classes)."""
    rng = np.random.default_rng(seed)
    flat = 2 * width * (side // 2) ** 2
    return nn.SequentialCell(
        nn.Conv2d(1, width, 3, padding=1, rng=rng), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1, rng=rng), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Dense(flat, 64, rng=rng), nn.ReLU(),
        nn.Dense(64, classes, rng=rng))


def make_optimizer(name, steps_per_epoch=1):
    if name == "adam":
        return optim.Adam(2e-3)
    if name == "momentum":
        return optim.Momentum(0.05, 0.9, nesterov=True)
    if name == "thor":
        return optim.THOR(0.02, 0.9, damping=0.1, frequency=10)
    raise ValueError(f"unknown optimizer {name!r}")


def train(epochs=15, batch=64, policy=None, optimizer="adam", seed=0, data=None, log=None):
    """Train the CNN; returns (test accuracy, per-epoch test accuracies, seconds)."""
    xtr, ytr, xte, yte = data if data is not None else load_digits(seed)
    net = make_cnn(side=xtr.shape[-1], seed=seed)
    opt = make_optimizer(optimizer)
    step = opt.train_step(net, nn.SoftmaxCrossEntropyWithLogits(), policy=policy) if hasattr(
        opt, "train_step") else nn.TrainOneStep(net, nn.SoftmaxCrossEntropyWithLogits(), opt,
                                                policy=policy)
    state = step.init()
    rng = np.random.default_rng(seed + 1)
    accs, t0 = [], time.perf_counter()
    for epoch in range(epochs):
        perm = rng.permutation(len(xtr))
        for i in range(0, len(perm) - batch + 1, batch):
            b = perm[i:i + batch]
            state, loss = step(state, xtr[b], ytr[b])
        acc = float((step.predict(state, xte, batch=512).argmax(-1) == yte).mean())
        accs.append(acc)
        if log:
            log(f"epoch {epoch + 1}: loss {float(loss):.4f} test accuracy {acc:.4f}")
    return accs[-1], accs, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=None)
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--mnist", default=None, help="path of a local mnist.npz")
    a = ap.parse_args(argv)
    data = load_mnist(a.mnist) if a.mnist else None
    acc, _, secs = train(a.epochs, policy=a.policy, optimizer=a.optimizer, data=data, log=print)
    print(f"test accuracy {acc:.4f} in {secs:.1f} s")


if __name__ == "__main__":
    main()
