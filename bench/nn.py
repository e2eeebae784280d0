"""Training-step benchmark: sciml vs PyTorch (CPU) and JAX, when installed, in one run.

1. MLP 784-512-512-10 (ReLU), batch 256, softmax cross entropy, Adam.
2. The digits CNN of ``examples/digits.py`` (conv 1->16, conv 16->32, maxpool, dense 512->64->10),
   batch 64, Adam.

Each framework runs the same network, loss and optimizer, float32, one full training step per
call (forward, backward, update). After warm-up (which includes sciml's tracing and JAX's
compilation, reported separately), the frameworks are timed in interleaved rounds (the order
rotates from round to round) and the median per-step time is reported, so load from other
processes hits all of them alike. Two clocks: wall time, and the process's CPU time (all its
threads), which leaves out the time spent waiting for a core on a shared machine. Thread counts
are pinned (``--threads``, default 1) for numpy's BLAS, PyTorch and XLA.

Run: ``python -m bench.nn [--threads 1] [--rounds 15] [--steps 10]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def _pin_threads(n):
    # XLA reads its flags at import time, so this runs before jax is imported.
    if n == 1:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                           "intra_op_parallelism_threads=1")
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(n)
    except ImportError:
        return None


# ---------------------------------------------------------------------------------------------
# sciml


def sciml_mlp(sizes, rng):
    import sciml.nn as nn

    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Dense(a, b, rng=rng))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.SequentialCell(layers)


def sciml_step(net, lr):
    import sciml.nn as nn
    import sciml.optim as optim

    step = nn.TrainOneStep(net, nn.SoftmaxCrossEntropyWithLogits(), optim.Adam(lr))
    state = [step.init()]

    def run(x, y):
        state[0], loss = step(state[0], x, y)
        return loss

    return run


# ---------------------------------------------------------------------------------------------
# PyTorch


def torch_step(kind, lr, threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    tnn = torch.nn
    if kind == "mlp":
        net = tnn.Sequential(tnn.Linear(784, 512), tnn.ReLU(), tnn.Linear(512, 512), tnn.ReLU(),
                             tnn.Linear(512, 10))
    else:
        net = tnn.Sequential(tnn.Conv2d(1, 16, 3, padding=1), tnn.ReLU(),
                             tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                             tnn.Flatten(), tnn.Linear(512, 64), tnn.ReLU(), tnn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    lossf = tnn.CrossEntropyLoss()

    def run(x, y):
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        opt.zero_grad(set_to_none=True)
        loss = lossf(net(xt), yt)
        loss.backward()
        opt.step()
        return float(loss)

    return run


# ---------------------------------------------------------------------------------------------
# JAX


def jax_step(kind, lr, rng):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def dense(k, a, b):
        return {"w": jnp.asarray(rng.normal(0, np.sqrt(2 / a), (a, b)), jnp.float32),
                "b": jnp.zeros(b, jnp.float32)}

    if kind == "mlp":
        params = [dense(0, 784, 512), dense(1, 512, 512), dense(2, 512, 10)]

        def forward(p, x):
            for layer in p[:-1]:
                x = jax.nn.relu(x @ layer["w"] + layer["b"])
            return x @ p[-1]["w"] + p[-1]["b"]
    else:
        params = [{"w": jnp.asarray(rng.normal(0, 0.3, (16, 1, 3, 3)), jnp.float32),
                   "b": jnp.zeros(16, jnp.float32)},
                  {"w": jnp.asarray(rng.normal(0, 0.1, (32, 16, 3, 3)), jnp.float32),
                   "b": jnp.zeros(32, jnp.float32)},
                  dense(2, 512, 64), dense(3, 64, 10)]

        def conv(x, layer):
            y = jax.lax.conv_general_dilated(x, layer["w"], (1, 1), ((1, 1), (1, 1)))
            return jax.nn.relu(y + layer["b"][None, :, None, None])

        def forward(p, x):
            x = conv(conv(x, p[0]), p[1])
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                      "VALID")
            x = jax.nn.relu(x.reshape(x.shape[0], -1) @ p[2]["w"] + p[2]["b"])
            return x @ p[3]["w"] + p[3]["b"]

    def loss_fn(p, x, y):
        logp = jax.nn.log_softmax(forward(p, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(p, m, v, t, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        c1, c2 = 1 - 0.9 ** t, 1 - 0.999 ** t
        p = jax.tree_util.tree_map(
            lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + 1e-8), p, m, v)
        return p, m, v, t, loss

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = [params, zeros, zeros, jnp.float32(0)]

    def run(x, y):
        *s, loss = step(*state, x, y)
        state[:] = s
        return loss.block_until_ready()

    return run


# ---------------------------------------------------------------------------------------------


def workloads(rng):
    from examples.digits import make_cnn

    x_mlp = rng.normal(size=(256, 784)).astype(np.float32)
    y_mlp = rng.integers(0, 10, 256)
    x_cnn = rng.uniform(size=(64, 1, 8, 8)).astype(np.float32)
    y_cnn = rng.integers(0, 10, 64)
    return {
        "MLP 784-512-512-10, batch 256": ("mlp", lambda: sciml_mlp([784, 512, 512, 10], rng),
                                          x_mlp, y_mlp),
        "digits CNN, batch 64": ("cnn", lambda: make_cnn(), x_cnn, y_cnn),
    }


def bench(name, kind, make_net, x, y, args, rng):
    runners = {"sciml": sciml_step(make_net(), 1e-3),
               "pytorch": torch_step(kind, 1e-3, args.threads),
               "jax": jax_step(kind, 1e-3, rng)}
    runners = {k: v for k, v in runners.items() if v is not None}
    warm = {}
    for k, run in runners.items():
        t0 = time.perf_counter()
        run(x, y)
        warm[k] = time.perf_counter() - t0
        for _ in range(3):
            run(x, y)
    wall, cpu = _timed_rounds(runners, x, y, args)
    print(f"\n{name} ({args.threads} thread(s), median of {args.rounds} rounds x "
          f"{args.steps} steps)")
    print(f"  {'framework':10s} {'ms/step':>9s} {'vs pytorch':>11s} {'cpu ms/step':>12s} "
          f"{'vs pytorch':>11s} {'first call s':>13s}")
    for k in runners:
        print(f"  {k:10s} {_cell(wall, k)} {_cell(cpu, k, 12)} {warm[k]:13.2f}")


def _timed_rounds(runners, x, y, args):
    """Median wall and CPU seconds per step of each runner over interleaved rounds."""
    names = list(runners)
    wall = {k: [] for k in names}
    cpu = {k: [] for k in names}
    for r in range(args.rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                runners[k](x, y)
            wall[k].append((time.perf_counter() - t0) / args.steps)
            cpu[k].append((time.process_time() - c0) / args.steps)
    return ({k: statistics.median(v) for k, v in wall.items()},
            {k: statistics.median(v) for k, v in cpu.items()})


def _cell(times, k, width=9):
    ref = times.get("pytorch")
    rel = f"{times[k] / ref:10.2f}x" if ref else "          -"
    return f"{times[k] * 1e3:{width}.2f} {rel}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args(argv)
    limits = _pin_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}")
    for name, (kind, make_net, x, y) in workloads(rng).items():
        bench(name, kind, make_net, x, y, args, rng)
    del limits


if __name__ == "__main__":
    main()
