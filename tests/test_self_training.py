"""Self-training objective (awesome-align SO): hand-computed value, self guide, and inside AmberTrainer."""

from __future__ import annotations

import math

import pytest
import torch
from test_amber_trainer import make

from amber_align.errors import ConfigError
from amber_align.losses.self_training import SelfTrainingLoss
from amber_align.trainers import AmberConfig


def test_so_equals_the_formula_by_hand():
    # one pair; x = [CLS, a, b, SEP], y = [CLS, c, SEP, PAD]: content x = {1, 2}, y = {1}
    h = torch.zeros(1, 4, 2)
    h[0, 1], h[0, 2] = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    x_content = torch.tensor([[False, True, True, False]])
    y_content = torch.tensor([[False, True, False, False]])
    y = torch.zeros(1, 4, 2)
    y[0, 1] = torch.tensor([3.0, 1.0])
    guide = torch.zeros(1, 4, 4, dtype=torch.bool)
    guide[0, 1, 1] = True  # link a-c
    # sim(a, c) = 3, sim(b, c) = 2. P_xy over the one target: 1 for both rows. P_yx over the sources of c:
    # e^3 / (e^3 + e^2) for a. L = -(1 / |x| + P_yx[a, c] / |y|) with |x| = 2, |y| = 1
    p = math.exp(3) / (math.exp(3) + math.exp(2))
    out = SelfTrainingLoss(weight=2.0)(h, y, x_content, y_content, guide)
    assert out["so"].item() == pytest.approx(-2.0 * (1 / 2 + p / 1), rel=1e-6)


def test_self_guide_is_the_thresholded_softmax_extraction_and_has_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, requires_grad=True)
    y = torch.randn(2, 6, 8)
    xc = torch.tensor([[0, 1, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=torch.bool)
    yc = torch.tensor([[0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    loss = SelfTrainingLoss(threshold=1e-3)
    sim = torch.bmm(x, y.transpose(1, 2))
    valid = xc.unsqueeze(2) & yc.unsqueeze(1)
    masked = sim.masked_fill(~valid, float("-inf"))
    p_xy, p_yx = masked.softmax(2).nan_to_num(0), masked.softmax(1).nan_to_num(0)
    guide = (p_xy > 1e-3) & (p_yx > 1e-3) & valid
    assert torch.allclose(loss(x, y, xc, yc)["so"], loss(x, y, xc, yc, guide)["so"])
    loss(x, y, xc, yc)["so"].backward()
    assert x.grad is not None and x.grad[xc].abs().sum() > 0 and x.grad[~xc].abs().sum() == 0


@pytest.mark.parametrize("guide", ["self", "links"])
def test_so_with_tlm_trains_in_amber_trainer_and_is_logged(tmp_path, guide):
    trainer, ds, _ = make(tmp_path, weights={"tlm": 1.0}, so_weight=1.0, so_guide=guide, so_layer=1)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 3 and all("so" in h and "tlm" in h and h["so"] < 0 for h in logged)
    assert all(h["loss"] == pytest.approx(h["so"] + h["tlm"], rel=1e-3, abs=1e-4) for h in logged)
    layer0 = next(n for n in before if "layer.0.attention" in n and n.endswith("query.weight"))
    assert not torch.equal(before[layer0], dict(trainer.model.named_parameters())[layer0].detach())
    if guide == "links":  # the guide marks the subwords of linked words, never [CLS]/[SEP]
        batch = trainer.data_collator([ds[i] for i in range(2)])
        g = batch["so_guide"]
        assert g.any() and not g[:, 0, :].any() and not g[:, :, 0].any()
        assert not (g & ~(batch["content_mask"][:2].unsqueeze(2) & batch["content_mask"][2:].unsqueeze(1))).any()


def test_so_config_errors_name_the_field_and_value(tmp_path):
    with pytest.raises(ConfigError, match="so_guide: expected one of \\('self', 'links'\\), got 'gold'"):
        AmberConfig(output_dir=str(tmp_path), so_weight=1.0, so_guide="gold")
    with pytest.raises(ConfigError, match="so_threshold: expected a probability in \\(0, 1\\), got 0.0"):
        AmberConfig(output_dir=str(tmp_path), so_weight=1.0, so_threshold=0.0)
    with pytest.raises(ConfigError, match="so_layer: 8 is out of range for a model with 2 layers"):
        make(tmp_path, weights={"tlm": 1.0}, so_weight=1.0)
    assert AmberConfig(output_dir=str(tmp_path), so_weight=1.0, so_guide="links").needs_word_links()
    assert not AmberConfig(output_dir=str(tmp_path), so_weight=1.0).needs_word_links()
