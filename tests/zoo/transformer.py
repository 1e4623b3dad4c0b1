"""Tiny transformer encoders over token ids.

Both factories take the same inputs and return the same output:
Inputs:  ``input_ids``      int64 (N, T), values in [0, 100)   -- N and T dynamic (T <= 64)
         ``attention_mask`` int64 (N, T), 1 = real token, 0 = padding
Outputs: ``last_hidden_state`` float32 (N, T, 32)

``tiny_encoder``  -- nn.Embedding + learned positions + hand-written multi-head attention
                     (matmul / softmax, additive mask of -1e4 so it stays FP16-safe),
                     LayerNorm, GELU feed-forward; 2 layers, 4 heads, d_model 32.
                     Exports with dynamic N and T with both exporters.
``mha_encoder``   -- same embeddings, but 2 x nn.TransformerEncoderLayer(batch_first=True,
                     norm_first=False, activation="gelu"), padding mask via src_key_padding_mask.
``mha_attention`` -- same embeddings, 1 block built from nn.MultiheadAttention(batch_first=True)
                     + LayerNorm + GELU FFN (no TransformerEncoderLayer fast path involved).
Measured with torch 2.13.0 / onnxruntime 1.32 (traced at N=3, T=16, run at 1x5, 4x17, 2x64):
  tiny_encoder                both exporters keep N and T dynamic, max abs err < 1e-6.
  mha_encoder, mha_attention  dynamo=True (opset 18): dynamic, err < 1.2e-6.
                              dynamo=False (opset 17): graph inputs say ['batch', 'seq'] but T is BAKED:
                              Reshape '/layers.0/self_attn/Reshape_4' (resp. '/mha/Reshape_4') gets its
                              shape from Concat(Constant [16], N*heads, 8); any T != 16 fails in ORT with
                              "The input tensor cannot be reshaped to the requested shape. Input
                              shape:{5,1,32}, requested shape:{16,4,8}".  Happens with and without a
                              padding mask.  So "bakes T with both exporters" is refuted for dynamo.

CLI:     --model tests/zoo/transformer.py:tiny_encoder --shape input_ids:1x16 --shape attention_mask:1x16
         (both inputs int64; dynamic axes: input_ids/attention_mask dim 0 = batch, dim 1 = sequence)
"""

import math

import torch
from torch import nn

VOCAB = 100
D_MODEL = 32
N_HEADS = 4
FFN = 64
MAX_LEN = 64


class Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, D_MODEL)
        self.pos = nn.Embedding(MAX_LEN, D_MODEL)
        self.norm = nn.LayerNorm(D_MODEL)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        return self.norm(self.tok(input_ids) + self.pos(positions))


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.out = nn.Linear(D_MODEL, D_MODEL)
        self.head_dim = D_MODEL // N_HEADS

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        # (N, T, D) -> (N, H, T, Dh); -1 instead of t keeps Reshape free of a traced constant
        q = q.reshape(n, -1, N_HEADS, self.head_dim).transpose(1, 2)
        k = k.reshape(n, -1, N_HEADS, self.head_dim).transpose(1, 2)
        v = v.reshape(n, -1, N_HEADS, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores + mask_bias  # (N, 1, 1, T)
        attn = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(attn, v).transpose(1, 2).reshape(n, t, D_MODEL)
        return self.out(ctx)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = SelfAttention()
        self.norm1 = nn.LayerNorm(D_MODEL)
        self.ffn = nn.Sequential(nn.Linear(D_MODEL, FFN), nn.GELU(), nn.Linear(FFN, D_MODEL))
        self.norm2 = nn.LayerNorm(D_MODEL)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, mask_bias))
        return self.norm2(x + self.ffn(x))


class TinyEncoder(nn.Module):
    def __init__(self, num_layers: int = 2) -> None:
        super().__init__()
        self.embeddings = Embeddings()
        self.layers = nn.ModuleList(Block() for _ in range(num_layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        # -1e4 (not finfo.min / -inf) so the graph survives an FP16 conversion
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -1e4
        for layer in self.layers:
            x = layer(x, mask_bias)
        return x


class MHAEncoder(nn.Module):
    """Embeddings + nn.TransformerEncoderLayer stack."""

    def __init__(self, num_layers: int = 2) -> None:
        super().__init__()
        self.embeddings = Embeddings()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                D_MODEL, N_HEADS, dim_feedforward=FFN, dropout=0.0, activation="gelu", batch_first=True
            )
            for _ in range(num_layers)
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        pad = attention_mask == 0
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        return x


class MHAAttention(nn.Module):
    """Embeddings + one block around a bare nn.MultiheadAttention."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = Embeddings()
        self.mha = nn.MultiheadAttention(D_MODEL, N_HEADS, dropout=0.0, batch_first=True)
        self.norm1 = nn.LayerNorm(D_MODEL)
        self.ffn = nn.Sequential(nn.Linear(D_MODEL, FFN), nn.GELU(), nn.Linear(FFN, D_MODEL))
        self.norm2 = nn.LayerNorm(D_MODEL)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        attn, _ = self.mha(x, x, x, key_padding_mask=attention_mask == 0, need_weights=False)
        x = self.norm1(x + attn)
        return self.norm2(x + self.ffn(x))


def tiny_encoder() -> nn.Module:
    torch.manual_seed(0)
    return TinyEncoder().eval()


def mha_encoder() -> nn.Module:
    torch.manual_seed(0)
    return MHAEncoder().eval()


def mha_attention() -> nn.Module:
    torch.manual_seed(0)
    return MHAAttention().eval()
