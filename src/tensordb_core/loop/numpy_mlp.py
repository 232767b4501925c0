"""A small numpy MLP (ReLU hidden layers, softmax output, SGD with momentum) for the demo and tests.

It implements :class:`tensordb_core.loop.framework.Model` and is built from a JSON
config by :func:`build` — the way workers turn a stored architecture document
into a model without executing stored code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np


class NumpyMLP:
    def __init__(self, sizes: Sequence[int], lr: float = 0.1, momentum: float = 0.9, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.sizes, self.lr, self.momentum = list(sizes), float(lr), float(momentum)
        self.params: dict[str, np.ndarray] = {}
        for i, (a, b) in enumerate(pairwise(sizes)):
            self.params[f"w{i}"] = (rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)
            self.params[f"b{i}"] = np.zeros(b, np.float32)
        self._velocity = {k: np.zeros_like(v) for k, v in self.params.items()}

    @property
    def layers(self) -> int:
        return len(self.sizes) - 1

    def _forward(self, X: np.ndarray) -> list[np.ndarray]:
        acts = [X.reshape(len(X), -1).astype(np.float32)]
        for i in range(self.layers):
            z = acts[-1] @ self.params[f"w{i}"] + self.params[f"b{i}"]
            acts.append(np.maximum(z, 0) if i < self.layers - 1 else z)
        return acts

    @staticmethod
    def _softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def fit_batch(self, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
        acts = self._forward(X)
        probs = self._softmax(acts[-1])
        y = np.asarray(y, dtype=np.int64)
        loss = float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean())
        acc = float((probs.argmax(axis=1) == y).mean())  # before the in-place gradient below changes probs
        grad = probs
        grad[np.arange(len(y)), y] -= 1
        grad /= len(y)
        for i in reversed(range(self.layers)):
            gw, gb = acts[i].T @ grad, grad.sum(axis=0)
            if i:
                grad = (grad @ self.params[f"w{i}"].T) * (acts[i] > 0)
            for name, g in ((f"w{i}", gw), (f"b{i}", gb)):
                self._velocity[name] = self.momentum * self._velocity[name] - self.lr * g
                self.params[name] += self._velocity[name]
        return {"loss": loss, "acc": acc}

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._forward(X)[-1].argmax(axis=1)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return {"acc": float((self.predict(X) == np.asarray(y)).mean())}

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def load_parameters(self, params: Mapping[str, np.ndarray]) -> None:
        self.params = {k: np.array(v, dtype=np.float32) for k, v in params.items()}
        self._velocity = {k: np.zeros_like(v) for k, v in self.params.items()}


def build(config: Mapping[str, Any], hyper: Mapping[str, Any] | None = None) -> NumpyMLP:
    """Build from an architecture config (``{"inputs": 64, "hidden": [64], "outputs": 10}``) and job hyper-parameters."""
    hyper = dict(hyper or {})
    hidden = hyper.get("hidden", config.get("hidden", [64]))
    sizes = [int(config["inputs"]), *[int(h) for h in hidden], int(config["outputs"])]
    return NumpyMLP(sizes, lr=hyper.get("lr", 0.1), momentum=hyper.get("momentum", 0.9), seed=hyper.get("seed", 0))
