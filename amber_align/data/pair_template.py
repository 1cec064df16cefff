"""How a tokenizer joins two sentences, read from the tokenizer itself (mBERT and XLM-R differ).

mBERT: ``[CLS] A [SEP] B [SEP]`` with token types 0…0 1…1; XLM-R: ``<s> A </s></s> B </s>`` with token types all 0.
Encoded pairs store each side as a single sentence (``[CLS] x [SEP]``); TLM and word-alignment agreement need
the pair, so ``PairTemplate`` strips the single-sentence specials and rebuilds the pair the tokenizer's way,
without calling the tokenizer per batch. Special tokens go with their sentence's block (the middle ones split
between A and B: ``[SEP]`` → A; ``</s>`` → A, ``</s>`` → B).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PairTemplate"]


@dataclass(frozen=True)
class PairTemplate:
    """Special-token layout of single sentences and pairs for one tokenizer."""

    single_prefix: int  # special tokens before a single sentence's content
    single_suffix: int  # ... and after it
    prefix: tuple[int, ...]  # pair: ids before A
    middle: tuple[int, ...]  # between A and B
    suffix: tuple[int, ...]  # after B
    types: tuple[int, int, int, int, int]  # token type of prefix, A, middle, B, suffix (the middle takes A's)
    middle_in_a: int  # how many middle tokens belong to A's block

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> PairTemplate:
        """Read the layout by encoding a known pair and single sentence with ``tokenizer``."""
        a, b = "Hallo", "Welt"
        single = tokenizer(a, return_special_tokens_mask=True, add_special_tokens=True)
        pair = tokenizer(a, b, return_special_tokens_mask=True, return_token_type_ids=True, add_special_tokens=True)
        s_special = single["special_tokens_mask"]
        content = [i for i, m in enumerate(s_special) if not m]
        if not content:
            raise ValueError(f"{type(tokenizer).__name__}: cannot find content tokens when encoding {a!r}")
        special = pair["special_tokens_mask"]
        ids = pair["input_ids"]
        runs: list[tuple[int, int]] = []
        for i, m in enumerate(special):
            if not m and (not runs or runs[-1][1] != i):
                runs.append((i, i + 1))
            elif not m:
                runs[-1] = (runs[-1][0], i + 1)
        if len(runs) != 2:
            raise ValueError(f"{type(tokenizer).__name__}: expected two content runs in a sentence pair, found "
                             f"{len(runs)} (special_tokens_mask {special})")
        (a0, a1), (b0, b1) = runs
        types = pair.get("token_type_ids") or [0] * len(ids)
        middle = tuple(ids[a1:b0])
        return cls(
            single_prefix=content[0],
            single_suffix=len(s_special) - content[-1] - 1,
            prefix=tuple(ids[:a0]),
            middle=middle,
            suffix=tuple(ids[b1:]),
            types=(types[0] if a0 else types[a0], types[a0], types[a0], types[b0], types[b0]),
            middle_in_a=(len(middle) + 1) // 2,
        )

    def content(self, single: Sequence[int]) -> list[int]:
        """The content ids of an encoded single sentence (its special tokens stripped)."""
        return list(single[self.single_prefix: len(single) - self.single_suffix])

    def build(self, a: Sequence[int], b: Sequence[int]) -> tuple[list[int], list[int], list[int], list[bool]]:
        """Join content ids ``a`` and ``b``: returns ``(input_ids, token_type_ids, block, is_content)`` where
        ``block`` is 0 for A's block and 1 for B's and ``is_content`` marks the non-special positions."""
        m_a = self.middle_in_a
        parts = [
            (list(self.prefix), self.types[0], 0, False),
            (list(a), self.types[1], 0, True),
            (list(self.middle[:m_a]), self.types[2], 0, False),
            (list(self.middle[m_a:]), self.types[4], 1, False),
            (list(b), self.types[3], 1, True),
            (list(self.suffix), self.types[4], 1, False),
        ]
        ids: list[int] = []
        types: list[int] = []
        block: list[int] = []
        content: list[bool] = []
        for tokens, typ, blk, is_content in parts:
            ids += tokens
            types += [typ] * len(tokens)
            block += [blk] * len(tokens)
            content += [is_content] * len(tokens)
        return ids, types, block, content

    @property
    def num_added(self) -> int:
        """Special tokens a pair adds around its two contents."""
        return len(self.prefix) + len(self.middle) + len(self.suffix)
