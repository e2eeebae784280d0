"""``python -m sciml``: trace a function, print its graph, save/load it and evaluate it."""

import numpy as np

import sciml


def main() -> None:
    def f(x, w):
        h = np.tanh(x @ w)
        return sciml.fori_loop(0, 3, lambda i, acc: acc * 0.5 + h.sum(), 0.0)

    x, w = np.linspace(0, 1, 4), np.eye(4)
    graph = sciml.make_graph(f, x, w)
    print(graph)
    restored = sciml.loads(sciml.dumps(graph))
    sciml.verify(restored)
    print("f(x, w) =", sciml.eval_graph(restored, x, w), "  (plain Python:", f(x, w), ")")


if __name__ == "__main__":
    main()
