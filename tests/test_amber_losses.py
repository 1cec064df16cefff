"""AMBER's loss modules against hand computations; the WA masks against the drawing in docs/methods.md
"AMBER objectives"; TLM masking."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import mbert_tokenizer, tiny_model, xlmr_tokenizer

from amber_align.attention import last_layer_attention
from amber_align.data.pair_template import PairTemplate
from amber_align.losses.sentence_alignment import SentenceAlignmentLoss, mean_pool
from amber_align.losses.tlm import IGNORE_INDEX, TranslationLanguageModelingLoss
from amber_align.losses.word_agreement import (
    WordAlignmentAgreementLoss,
    additive_mask,
    agreement_attention_masks,
)
from amber_align.trainers.amber_collator import AmberCollator

# ----- sentence alignment ---------------------------------------------------------------------------------------
X = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
Y = [[0.5, 0.5], [0.0, 2.0], [1.0, -1.0]]


def _hand_sa(xs, ys):
    total = 0.0
    for i, x in enumerate(xs):
        scores = [sum(a * b for a, b in zip(x, y)) for y in ys]
        total += -scores[i] + math.log(sum(math.exp(s) for s in scores))
    return total / len(xs)


def test_sa_three_pairs_by_hand():
    loss = SentenceAlignmentLoss()(torch.tensor(X), torch.tensor(Y))
    assert set(loss) == {"sa"}
    # row 0: scores .5, 0, 1 ; row 1: .5, 2, -1 ; row 2: 1, 2, 0
    by_hand = ((-0.5 + math.log(math.exp(.5) + 1 + math.exp(1))) + (-2 + math.log(math.exp(.5) + math.exp(2)
               + math.exp(-1))) + (-0 + math.log(math.e + math.exp(2) + 1))) / 3
    assert loss["sa"].item() == pytest.approx(by_hand, rel=1e-6)
    assert by_hand == pytest.approx(_hand_sa(X, Y))


def test_sa_options_symmetric_cosine_weight_and_global_count():
    sym = SentenceAlignmentLoss(symmetric=True)(torch.tensor(X), torch.tensor(Y))["sa"].item()
    assert sym == pytest.approx((_hand_sa(X, Y) + _hand_sa(Y, X)) / 2, rel=1e-6)
    norm = lambda rows: [[v / math.sqrt(sum(u * u for u in r)) / math.sqrt(0.1) for v in r] for r in rows]  # noqa
    cos = SentenceAlignmentLoss(similarity="cosine", temperature=0.1)(torch.tensor(X), torch.tensor(Y))["sa"].item()
    assert cos == pytest.approx(_hand_sa(norm(X), norm(Y)), rel=1e-5)
    weighted = SentenceAlignmentLoss(weight=0.5)(torch.tensor(X), torch.tensor(Y), num_pairs=6)["sa"].item()
    assert weighted == pytest.approx(0.5 * _hand_sa(X, Y) * 3 / 6, rel=1e-6)
    with pytest.raises(ValueError, match="similarity"):
        SentenceAlignmentLoss(similarity="l2")


def test_mean_pool_excludes_padding():
    h = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert mean_pool(h, torch.tensor([[1, 1, 0]])).item() == 2.0


# ----- word-alignment agreement ---------------------------------------------------------------------------------
DRAWN_Y_TO_X = [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 0, 1]]
DRAWN_X_TO_Y = [[1, 0, 0, 1, 1], [0, 1, 0, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]


def test_wa_masks_equal_design_drawing():
    y_to_x, x_to_y = agreement_attention_masks(torch.tensor([[0, 0, 0, 1, 1]]))
    assert y_to_x.shape == (1, 1, 5, 5)
    assert y_to_x[0, 0].int().tolist() == DRAWN_Y_TO_X
    assert x_to_y[0, 0].int().tolist() == DRAWN_X_TO_Y


def test_wa_masks_padding_sees_itself_only_and_is_never_seen():
    y_to_x, x_to_y = agreement_attention_masks(torch.tensor([[0, 0, 1, -1]]))
    for m in (y_to_x[0, 0], x_to_y[0, 0]):
        assert m[:, 3].int().tolist() == [0, 0, 0, 1]
        assert m[3].int().tolist() == [0, 0, 0, 1]
    add = additive_mask(y_to_x, torch.float32)
    assert add[0, 0, 0, 0] == 0 and add[0, 0, 0, 2] == torch.finfo(torch.float32).min


def _direct_wa(a_xy, a_yx, xs, ys):
    heads = a_xy.shape[0]
    total = 0.0
    for h in range(heads):
        total += sum(float(a_xy[h, i, j] * a_yx[h, j, i]) for i in xs for j in ys) / min(len(xs), len(ys))
    return 1 - total / heads


def test_wa_two_heads_equals_direct_computation():
    torch.manual_seed(0)
    t = 7  # [CLS] x1 x2 x3 [SEP] y1 y2 ... laid out as content flags below
    xs, ys = [1, 2, 3], [5, 6]
    a_xy = torch.softmax(torch.randn(1, 2, t, t), -1)
    a_yx = torch.softmax(torch.randn(1, 2, t, t), -1)
    x_content = torch.zeros(1, t, dtype=torch.bool)
    y_content = torch.zeros(1, t, dtype=torch.bool)
    x_content[0, xs] = True
    y_content[0, ys] = True
    got = WordAlignmentAgreementLoss()(a_yx, a_xy, x_content, y_content)["wa"].item()
    assert got == pytest.approx(_direct_wa(a_xy[0], a_yx[0], xs, ys), rel=1e-6)


def test_wa_is_zero_when_directions_agree_and_positive_otherwise():
    t, xs, ys = 4, [0, 1], [2, 3]
    agree_xy = torch.zeros(1, 2, t, t)
    agree_yx = torch.zeros(1, 2, t, t)
    for i, j in ((0, 3), (1, 2)):  # the same one-to-one alignment seen from both sides, every head
        agree_xy[0, :, i, j] = 1
        agree_yx[0, :, j, i] = 1
    xc = torch.tensor([[True, True, False, False]])
    yc = ~xc
    loss = WordAlignmentAgreementLoss()
    assert loss(agree_yx, agree_xy, xc, yc)["wa"].item() == pytest.approx(0.0, abs=1e-7)
    crossed = torch.zeros(1, 2, t, t)
    crossed[0, :, 2, 0] = crossed[0, :, 3, 1] = 1  # y→x disagrees with x→y
    assert loss(crossed, agree_xy, xc, yc)["wa"].item() == pytest.approx(1.0)
    torch.manual_seed(1)
    for _ in range(5):
        r = torch.softmax(torch.randn(1, 2, t, t), -1)
        assert loss(r, torch.softmax(torch.randn(1, 2, t, t), -1), xc, yc)["wa"].item() > 0


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
def test_last_layer_attention_probs_and_mask_polarity(kind):
    model = tiny_model(kind)
    ids = torch.tensor([[5, 6, 7, 8, 9]]) + 1000
    y_to_x, _ = agreement_attention_masks(torch.tensor([[0, 0, 0, 1, 1]]))
    mask = additive_mask(y_to_x, torch.float32)
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask)
        with last_layer_attention(model):
            ours = model(input_ids=ids, attention_mask=mask, output_attentions=True)
        assert model.config._attn_implementation != "amber_last_layer_probs"  # restored
        model.config._attn_implementation = "eager"
        eager = model(input_ids=ids, attention_mask=mask, output_attentions=True)
        model.config._attn_implementation = "sdpa"
    assert torch.allclose(plain.last_hidden_state, ours.last_hidden_state, atol=1e-5)
    probs = ours.attentions[-1]
    assert probs.shape == (1, model.config.num_attention_heads, 5, 5)
    assert torch.allclose(probs, eager.attentions[-1], atol=1e-6)
    assert probs[0, :, :3, 3:].abs().max() == 0  # x queries never see y under mask_y_to_x
    assert probs[0, :, 3, 4].abs().max() == 0 and probs[0, :, 4, 3].abs().max() == 0  # y sees x and itself only


# ----- TLM ---------------------------------------------------------------------------------------------------------
def test_tlm_loss_is_cross_entropy_over_masked_positions():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[0, IGNORE_INDEX, 2]])
    got = TranslationLanguageModelingLoss(weight=2.0)(logits, labels)
    by_hand = ((-2 + math.log(math.exp(2) + 2)) + math.log(3)) / 2
    assert got["tlm"].item() == pytest.approx(2 * by_hand, rel=1e-6)
    mlm = TranslationLanguageModelingLoss(name="mlm")(logits[0, [0, 2]], torch.tensor([0, 2]), num_masked=4)
    assert mlm["mlm"].item() == pytest.approx(by_hand * 2 / 4, rel=1e-6)


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
def test_pair_template_matches_the_tokenizer(kind):
    tok = mbert_tokenizer() if kind == "mbert" else xlmr_tokenizer()
    tpl = PairTemplate.from_tokenizer(tok)
    x, y = tok("Guten Morgen, Welt")["input_ids"], tok("good morning")["input_ids"]
    ids, types, block, content = tpl.build(tpl.content(x), tpl.content(y))
    ref = tok("Guten Morgen, Welt", "good morning", return_token_type_ids=True, return_special_tokens_mask=True)
    assert ids == ref["input_ids"] and types == ref["token_type_ids"]
    assert content == [not m for m in ref["special_tokens_mask"]]
    n_x = len(x)  # x's block is [CLS] x [SEP] / <s> x </s>: exactly the single-sentence encoding's length
    assert block == [0] * n_x + [1] * (len(ids) - n_x)


def _features(tok, n):
    words = "the quick brown fox jumps over the lazy dog again and again".split()
    feats = []
    for i in range(n):
        x = tok(" ".join(words[: 3 + i % 8]))["input_ids"]
        y = tok(" ".join(reversed(words[: 2 + i % 9])))["input_ids"]
        feats.append({"x_input_ids": x, "y_input_ids": y, "x_link_spans": [], "y_link_spans": []})
    return feats


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
def test_tlm_masks_only_non_special_tokens_at_the_configured_rate(kind):
    tok = mbert_tokenizer() if kind == "mbert" else xlmr_tokenizer()
    collator = AmberCollator(tok, tlm=True, mlm=True)
    torch.manual_seed(0)
    masked = content = mask_tok = kept = 0
    for _ in range(40):
        b = collator(_features(tok, 32))
        labels, ids, orig = b["tlm_labels"], b["tlm_input_ids"], b["pair_input_ids"]
        is_masked = labels != IGNORE_INDEX
        assert not (is_masked & ~b["pair_content"]).any()  # specials and padding never masked
        assert torch.equal(labels[is_masked], orig[is_masked])
        assert torch.equal(ids[~is_masked], orig[~is_masked])
        assert b["num_masked_tokens"] == int(is_masked.sum())
        masked += int(is_masked.sum())
        content += int(b["pair_content"].sum())
        mask_tok += int((ids[is_masked] == tok.mask_token_id).sum())
        kept += int((ids[is_masked] == orig[is_masked]).sum())
        mlm_masked = b["mlm_labels"] != IGNORE_INDEX
        special = torch.isin(b["input_ids"], torch.tensor(tok.all_special_ids)) | (b["attention_mask"] == 0)
        assert not (mlm_masked & special).any()
    rate = masked / content
    assert 0.13 < rate < 0.17, rate  # 15 % of ~10k content tokens: ±2 points is > 5 standard deviations
    assert 0.76 < mask_tok / masked < 0.84  # 80 % [MASK]
    assert 0.06 < kept / masked < 0.14  # ~10 % unchanged (a random replacement rarely hits the original)


def test_last_layer_attention_finds_the_model_config_under_a_deepspeed_engine():
    """Issue 25 item 2: a DeepSpeed engine has a ``.config`` of its own (a dict) and wraps the model as
    ``.module``; the attention hook took the dict (``'dict' object has no attribute '_attn_implementation'``)."""
    from amber_align.attention import LAST_LAYER_PROBS, last_layer_attention

    model = tiny_model("mbert")

    class Engine(torch.nn.Module):  # the shape of deepspeed.DeepSpeedEngine: its own dict config, the model inside
        def __init__(self, module):
            super().__init__()
            self.module, self.config = module, {"train_batch_size": 8, "zero_optimization": {"stage": 2}}

    engine = Engine(model)
    before = model.config._attn_implementation
    with last_layer_attention(engine):
        assert model.config._attn_implementation == LAST_LAYER_PROBS
    assert model.config._attn_implementation == before and engine.config["zero_optimization"]["stage"] == 2
