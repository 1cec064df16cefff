"""Collator for ``AmberTrainer``: what each enabled AMBER objective needs from a batch of encoded pairs.

- SA and Cao: x and y as separate sentences in one ``[2B, T]`` batch (x rows first), from ``AlignedPairCollator``
  (which also indexes the link ends that Cao pools).
- TLM and WA: the pair [x; y] joined the tokenizer's way (``PairTemplate``) in a ``[B, T2]`` batch, with each
  position's block (0 = x, 1 = y, -1 = padding) and a content flag (special tokens excluded) for the WA masks.
- TLM / MLM: a masked copy of the pair batch / of the separate batch, masked by
  ``transformers.DataCollatorForLanguageModeling`` (15 %, 80/10/10; special tokens and padding never masked).
- SO (self-training): ``content_mask`` ``[2B, T]`` (subwords of the separate batch, no specials, no padding) and,
  when the guide is the data's word links, ``so_guide`` ``[B, T, T]``: every subword pair of every linked word pair
  (the [CLS]/[SEP] links that ``encode_aligned_pairs`` adds fall outside the content mask and are left out).

Counts are plain ints (no device sync): ``num_pairs``, ``num_masked_tokens``, ``num_mlm_masked_tokens``, and
from the pair collator ``num_links``, ``num_anchor_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DataCollatorForLanguageModeling

from amber_align.data.pair_template import PairTemplate
from amber_align.errors import ConfigError
from amber_align.losses.tlm import IGNORE_INDEX
from amber_align.losses.word_agreement import PAD_BLOCK
from amber_align.trainers.pair_collator import AlignedPairCollator

__all__ = ["AmberCollator"]


@dataclass
class AmberCollator:
    """Build the tensors for the enabled objectives (``pair``: TLM or WA on; ``tlm``; ``mlm``; ``so``: self-training,
    ``so_links``: its guide from the word links)."""

    tokenizer: Any
    pooling: str = "mean"
    pair: bool = True
    tlm: bool = True
    mlm: bool = False
    so: bool = False
    so_links: bool = False
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_multiple_of: int | None = None
    template: PairTemplate = field(init=False)

    def __post_init__(self) -> None:
        self.template = PairTemplate.from_tokenizer(self.tokenizer)
        self._pairs = AlignedPairCollator(pad_token_id=self.tokenizer.pad_token_id, pooling=self.pooling,
                                          pad_to_multiple_of=self.pad_to_multiple_of)
        self._masker = None
        if self.tlm or self.mlm:
            if self.tokenizer.mask_token_id is None:
                raise ConfigError(f"{type(self.tokenizer).__name__} has no mask token: TLM/MLM cannot mask; set "
                                  "tlm_weight and mlm_weight to 0, or use a tokenizer with a mask token")
            self._masker = DataCollatorForLanguageModeling(
                self.tokenizer, mlm_probability=self.mlm_probability, mask_replace_prob=self.mask_replace_prob,
                random_replace_prob=self.random_replace_prob,
            )
        self._special_ids = torch.as_tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)

    def _mask(self, input_ids: torch.Tensor, never: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        masked, labels = self._masker.torch_mask_tokens(input_ids.clone(), special_tokens_mask=never)
        return masked, labels, int((labels != IGNORE_INDEX).sum())

    @staticmethod
    def _guide(features: list[dict[str, Any]], content: torch.Tensor) -> torch.Tensor:
        """``[B, T, T]``: every subword pair of every link, kept only between content positions of x (rows
        ``0..B-1`` of ``content``) and y (rows ``B..2B-1``), which drops the special-token links."""
        b, t = len(features), content.shape[1]
        guide = torch.zeros((b, t, t), dtype=torch.bool)
        for row, f in enumerate(features):
            xs, ys = f["x_link_spans"], f["y_link_spans"]
            for k in range(0, len(xs), 2):
                guide[row, xs[k]:xs[k + 1], ys[k]:ys[k + 1]] = True
        return guide & content[:b].unsqueeze(2) & content[b:].unsqueeze(1)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        out = self._pairs(features)
        out["num_pairs"] = len(features)
        if self.so:
            out["content_mask"] = (out["attention_mask"] == 1) & ~torch.isin(out["input_ids"], self._special_ids)
            if self.so_links:
                out["so_guide"] = self._guide(features, out["content_mask"])
        if self.mlm:
            never = (out["attention_mask"] == 0) | torch.isin(out["input_ids"], self._special_ids)
            out["mlm_input_ids"], out["mlm_labels"], out["num_mlm_masked_tokens"] = self._mask(out["input_ids"], never)
        if not self.pair:
            return out
        tpl = self.template
        rows = [tpl.build(tpl.content(f["x_input_ids"]), tpl.content(f["y_input_ids"])) for f in features]
        t = max(len(r[0]) for r in rows)
        if self.pad_to_multiple_of:
            t = -(-t // self.pad_to_multiple_of) * self.pad_to_multiple_of
        b = len(rows)
        ids = torch.full((b, t), self.tokenizer.pad_token_id, dtype=torch.long)
        types = torch.zeros((b, t), dtype=torch.long)
        block = torch.full((b, t), PAD_BLOCK, dtype=torch.long)
        content = torch.zeros((b, t), dtype=torch.bool)
        for r, (i, ty, bl, c) in enumerate(rows):
            n = len(i)
            ids[r, :n] = torch.as_tensor(i)
            types[r, :n] = torch.as_tensor(ty)
            block[r, :n] = torch.as_tensor(bl)
            content[r, :n] = torch.as_tensor(c)
        out.update(pair_input_ids=ids, pair_attention_mask=(block != PAD_BLOCK).long(), pair_token_type_ids=types,
                   pair_block=block, pair_content=content)
        if self.tlm:
            out["tlm_input_ids"], out["tlm_labels"], out["num_masked_tokens"] = self._mask(ids, ~content)
        return out
