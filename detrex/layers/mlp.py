"""Multi-layer perceptron heads and the transformer feed-forward block."""

import torch
import torch.nn.functional as F
from torch import nn

from .wrappers import Dropout


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (box heads, reference-point heads).

    Parameters are ``layers.0 .. layers.{num_layers - 1}`` (the DETR-family checkpoint names).
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class FFN(nn.Module):
    """Transformer feed-forward block: Linear -> activation -> dropout -> ... -> Linear -> dropout.

    Returns the branch only; the caller adds the residual and normalises. Parameter names follow detrex
    checkpoints: ``layers.0.0`` (first Linear), ``layers.1`` (second Linear) for ``num_fcs=2``.

    Args:
        embed_dim: input (and default output) width.
        feedforward_dim: hidden width.
        output_dim: output width; None means embed_dim.
        num_fcs: number of Linear layers (>= 2).
        activation: activation module; None means ReLU.
        ffn_drop: dropout after the activation and after the last Linear.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        feedforward_dim: int = 1024,
        output_dim: int | None = None,
        num_fcs: int = 2,
        activation: nn.Module | None = None,
        ffn_drop: float = 0.0,
    ):
        super().__init__()
        if num_fcs < 2:
            raise ValueError(f"FFN: num_fcs must be >= 2, got {num_fcs}")
        activation = nn.ReLU() if activation is None else activation
        hidden = []
        in_dim = embed_dim
        for _ in range(num_fcs - 1):  # one activation module shared by the hidden layers, as in detrex
            hidden.append(nn.Sequential(nn.Linear(in_dim, feedforward_dim), activation, Dropout(ffn_drop)))
            in_dim = feedforward_dim
        out_dim = embed_dim if output_dim is None else output_dim
        self.layers = nn.Sequential(*hidden, nn.Linear(in_dim, out_dim), Dropout(ffn_drop))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
