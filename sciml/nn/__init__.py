"""sciml.nn: network layers (Cell), losses, training and PINN losses on sciml's IR.

>>> import numpy as np, sciml.nn as nn
>>> net = nn.SequentialCell(nn.Dense(2, 4), nn.Tanh(), nn.Dense(4, 1))
>>> net(np.zeros((3, 2), np.float32)).shape
(3, 1)
"""

from . import functional, init  # noqa: F401
from .cell import Buffer, Cell, Parameter, key
from .layers import (
    ACTIVATIONS,
    GELU,
    AvgPool2d,
    BatchNorm,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    MaxPool2d,
    ReLU,
    SequentialCell,
    Sigmoid,
    SiLU,
    Softplus,
    Tanh,
    get_activation,
)
from .losses import (
    BCEWithLogitsLoss,
    MSELoss,
    SigmoidCrossEntropy,
    SmoothL1Loss,
    SoftmaxCrossEntropy,
    SoftmaxCrossEntropyWithLogits,
)
from .pinn import pinn_loss
from .train import TrainOneStep, compiled, grad, value_and_grad

__all__ = [
    "ACTIVATIONS", "AvgPool2d", "BCEWithLogitsLoss", "BatchNorm", "BatchNorm1d", "BatchNorm2d",
    "Buffer", "Cell", "Conv1d", "Conv2d", "Dense", "Dropout", "Embedding", "Flatten", "GELU",
    "LayerNorm", "MSELoss", "MaxPool2d", "Parameter", "ReLU", "SequentialCell", "SiLU",
    "Sigmoid", "SigmoidCrossEntropy", "SmoothL1Loss", "SoftmaxCrossEntropy",
    "SoftmaxCrossEntropyWithLogits", "Softplus", "Tanh", "functional", "get_activation", "init",
    "key", "pinn_loss", "TrainOneStep", "compiled", "grad", "value_and_grad",
]
