"""Gururani, Sharma & Lerch (ISMIR 2019), "An attention mechanism for musical instrument
recognition": the ATT baseline of the paper.

Architecture (per frame, so any number of frames works):
input BatchNorm over the features -> 3 x [1x1 conv (no bias) -> BatchNorm -> ReLU ->
dropout] -> + the raw (un-normalised) input -> Kong et al. attention head.

Residual placement: one skip connection adds the block stack's input, before the input
BatchNorm, to the output of the third block, as in the authors' code (AttentionMIC,
``EmbeddingLayers``). A skip is parameter-free, so any placement keeps the 55,336
trainable parameters (20 classes): 256 (input BN) + 3 x (16,384 + 256) + 2 x (2,560 + 20).
Dropout 0.6 is the rate of the authors' published run command for this model.
A 1x1 convolution over frames is a Linear layer applied to each frame, which is how
it is implemented; BatchNorm statistics are over all (clip, frame) pairs of the batch,
as BatchNorm2d over a (B, F, T, 1) tensor would compute them.
"""
from __future__ import annotations

import torch
from torch import nn

from instrec.models.dropout import Dropout
from instrec.models.output import AttentionPooling, ModelOutput, check_input


class GururaniAttention(nn.Module):
    """ATT model; input (B, T, n_features), any T >= 1 (T * B >= 2 in training for BatchNorm).

    Output: ModelOutput with clip (B, C), frame (B, T, C) and attention (B, T, C).
    """


    def __init__(self, n_classes: int = 20, n_features: int = 128, n_frames: int = 10,
                 n_layers: int = 3, dropout: float = 0.6) -> None:
        super().__init__()
        self.config = dict(n_classes=n_classes, n_features=n_features, n_frames=n_frames,
                           n_layers=n_layers, dropout=dropout)
        self.input_bn = nn.BatchNorm1d(n_features)
        self.convs = nn.ModuleList(nn.Linear(n_features, n_features, bias=False) for _ in range(n_layers))
        self.bns = nn.ModuleList(nn.BatchNorm1d(n_features) for _ in range(n_layers))
        self.dropout = Dropout(dropout)
        self.head = AttentionPooling(n_features, n_classes)

    def draw_masks(self, batch: int, n_frames: int) -> tuple[torch.Tensor | None, ...]:
        """The dropout masks, one (B*T, F) per block, a training forward pass of ``batch``
        clips of ``n_frames`` frames draws, in the order it draws them."""
        shape = (batch * n_frames, self.config["n_features"])
        return tuple(self.dropout.draw(shape) for _ in self.convs)

    def forward(self, x: torch.Tensor, masks: tuple[torch.Tensor | None, ...] | None = None) -> ModelOutput:
        """``masks``: from :meth:`draw_masks`, or None to draw them here."""
        check_input(x, self.config["n_features"], "att")
        batch, n_frames, n_feat = x.shape
        if masks is None:
            masks = self.draw_masks(batch, n_frames)
        frames = x.reshape(batch * n_frames, n_feat)
        z = self.input_bn(frames)
        for conv, bn, mask in zip(self.convs, self.bns, masks):
            z = self.dropout(torch.relu(bn(conv(z))), mask)
        z = z + frames
        return self.head(z.view(batch, n_frames, n_feat))
