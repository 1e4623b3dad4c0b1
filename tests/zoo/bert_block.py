"""A small BERT-like encoder written the way transformers' BertModel (SDPA attention) is, without transformers.

Factory: ``bert_block``
Inputs:  ``input_ids`` int64 (N, T) in [0, 100), ``attention_mask`` int64 (N, T) 1 = token, 0 = padding
Outputs: ``last_hidden_state`` float32 (N, T, 64)
Layers:  embeddings + LayerNorm; 2 x (separate q/k/v Linear, view (N, T, 4, 16) + transpose, scaled_dot_product_attention
         with an additive (N, 1, 1, T) mask, output Linear + residual LayerNorm, Linear-GELU-Linear + residual LayerNorm).
With onnxscript 0.7.2 + onnxruntime 1.2x fusers on the dynamo export: 2 MultiHeadAttention, 4 SkipLayerNormalization,
2 Gelu (the same fusions as on transformers' own BertModel).
CLI:     --model tests/zoo/bert_block.py:bert_block --shape input_ids:2x16,attention_mask:2x16
"""

import torch
from torch import nn
from torch.nn import functional as F

HIDDEN, HEADS, FFN, VOCAB, MAX_LEN = 64, 4, 128, 100, 64


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query, self.key, self.value = (
            nn.Linear(HIDDEN, HIDDEN),
            nn.Linear(HIDDEN, HIDDEN),
            nn.Linear(HIDDEN, HIDDEN),
        )
        self.dense, self.norm = nn.Linear(HIDDEN, HIDDEN), nn.LayerNorm(HIDDEN, eps=1e-12)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        return x.view(n, t, HEADS, HIDDEN // HEADS).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        q, k, v = self.heads(self.query(x)), self.heads(self.key(x)), self.heads(self.value(x))
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        ctx = ctx.transpose(1, 2).reshape(n, t, HIDDEN)
        return self.norm(self.dense(ctx) + x)


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = SelfAttention()
        self.up, self.down = nn.Linear(HIDDEN, FFN), nn.Linear(FFN, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.attention(x, mask)
        return self.norm(self.down(F.gelu(self.up(h))) + h)


class BertBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, HIDDEN), nn.Embedding(MAX_LEN, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = nn.ModuleList([Layer(), Layer()])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.norm(self.tok(input_ids) + self.pos(positions))
        mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, mask)
        return x


def bert_block() -> nn.Module:
    torch.manual_seed(0)
    return BertBlock().eval()
