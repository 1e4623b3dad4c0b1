"""Self-attention through torch's nn.MultiheadAttention (one packed [3E, E] in-projection), as ViT and CLIP-style
encoders use it, with non-zero projection biases (a trained model's; the default initialisation zeroes them and the
simplifier then drops the Adds).

Factories (input ``x`` float32 (N, 10, 32), output ``y`` float32 (N, 10, 32), N dynamic):
``batch_first``  -- two pre-norm blocks, nn.MultiheadAttention(32, 4, batch_first=True)
``seq_first``    -- one block with batch_first=False: the block transposes to (10, N, 32) and back
``masked``       -- as batch_first with a causal attn_mask: not the packed pattern, left unfused
CLI:     --model tests/zoo/packed_attention.py:batch_first --min-shape x:1x10x32 --opt-shape x:2x10x32
         --max-shape x:4x10x32
"""

import torch
from torch import nn

EMBED, HEADS, TOKENS = 32, 4, 10


class Block(nn.Module):
    def __init__(self, batch_first: bool = True, causal: bool = False) -> None:
        super().__init__()
        self.batch_first, self.causal = batch_first, causal
        self.norm = nn.LayerNorm(EMBED)
        self.attention = nn.MultiheadAttention(EMBED, HEADS, batch_first=batch_first)
        nn.init.normal_(self.attention.in_proj_bias, std=0.2)
        nn.init.normal_(self.attention.out_proj.bias, std=0.2)
        self.mlp = nn.Sequential(nn.Linear(EMBED, 2 * EMBED), nn.GELU(), nn.Linear(2 * EMBED, EMBED))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        if not self.batch_first:
            h = h.transpose(0, 1)
        mask = torch.triu(torch.ones(TOKENS, TOKENS, dtype=torch.bool), 1) if self.causal else None
        h = self.attention(h, h, h, need_weights=False, attn_mask=mask)[0]
        if not self.batch_first:
            h = h.transpose(0, 1)
        x = x + h
        return x + self.mlp(x)


class Stack(nn.Module):
    def __init__(self, *blocks: Block) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def _model(*blocks: Block) -> nn.Module:
    return Stack(*blocks).eval()


def batch_first() -> nn.Module:
    torch.manual_seed(0)
    return _model(Block(), Block())


def seq_first() -> nn.Module:
    torch.manual_seed(0)
    return _model(Block(batch_first=False))


def masked() -> nn.Module:
    torch.manual_seed(0)
    return _model(Block(causal=True))
