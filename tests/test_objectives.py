"""The objectives registry: a new objective is this file's loss module, config field and one registration; it trains
with AmberTrainer, shares the sentence forward, is logged, normalised by its count and cited on the card."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import pytest
import torch
from helpers import mbert_tokenizer, tiny_model_dir
from test_cao_trainer import demo_pairs
from transformers import AutoModel

from amber_align import AmberConfig, AmberTrainer
from amber_align.errors import ConfigError
from amber_align.hub.methods import METHODS, Method, methods_for_alignment
from amber_align.losses.sentence_alignment import mean_pool
from amber_align.modeling import select_hidden
from amber_align.objectives import OBJECTIVES, Objective, get_objective, register_objective, unregister_objective


class SentenceDistanceLoss(torch.nn.Module):
    """Toy objective: weight · mean over pairs of ||c_x − c_y||² (mean-pooled last layer)."""

    citations = ("toy-paper",)

    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def forward(self, cx: torch.Tensor, cy: torch.Tensor, num_pairs: torch.Tensor | None) -> dict[str, torch.Tensor]:
        n = cx.shape[0] if num_pairs is None else num_pairs
        return {"toy": self.weight * ((cx - cy) ** 2).sum() / n}


def _toy_parts(step, loss):
    mask = step.inputs["attention_mask"]
    last = select_hidden(step.sentences(), -1)
    b = mask.shape[0] // 2
    return loss(mean_pool(last[:b], mask[:b]), mean_pool(last[b:], mask[b:]), step.count("num_pairs"))


@dataclass
class ToyConfig(AmberConfig):
    toy_weight: float = field(default=0.0, metadata={"help": "Weight of the toy sentence-distance objective."})


TOY = Objective(name="toy", weight_field="toy_weight", parts=("toy",),
                build=lambda config: SentenceDistanceLoss(config.toy_weight), compute=_toy_parts,
                cites=SentenceDistanceLoss.citations, count_keys=("num_pairs",), sentence_layers=lambda c: (-1,))


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(METHODS, "toy-paper", Method(reference="Toy, 2026", description="a toy objective",
                                                     bibtex="@misc{toy2026, title={Toy}}"))
    register_objective(TOY)
    yield TOY
    unregister_objective("toy")


def _trainer(tmp_path, **weights):
    tok = mbert_tokenizer()
    d = tiny_model_dir("mbert", tmp_path / "tiny")
    w = {"tlm_weight": 0.0, "sa_weight": 0.0, "wa_weight": 0.0, **weights}
    args = ToyConfig(output_dir=str(tmp_path / "out"), model_name_or_path=str(d), report_to=[], use_cpu=True,
                     logging_steps=1, save_strategy="no", max_steps=2, per_device_train_batch_size=4,
                     learning_rate=1e-3, **w)
    ds = demo_pairs(tok, 8)
    return AmberTrainer(model=AutoModel.from_pretrained(str(d)), args=args, train_dataset=ds, processing_class=tok)


def test_a_new_objective_trains_logged_counted_and_cited(tmp_path, toy):
    trainer = _trainer(tmp_path, toy_weight=2.0)
    args = trainer.args
    assert args.loss_parts() == ("toy",) and trainer.count_keys == ("num_pairs",)
    assert not args.needs_word_links() and trainer.teacher is None  # a toy objective needs neither
    assert methods_for_alignment(args) == ["toy-paper"]
    # the part equals its formula, computed here by hand from an eager forward
    model = trainer.model.eval()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    with torch.no_grad():
        parts = trainer.compute_loss_parts(model, batch, None)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (out * mask).sum(1) / mask.sum(1)
    expected = 2.0 * ((pooled[:4] - pooled[4:]) ** 2).sum() / 4
    torch.testing.assert_close(parts["toy"], expected)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 2 and all(math.isfinite(h["toy"]) and h["loss"] == pytest.approx(h["toy"], rel=1e-3)
                                    for h in logged)
    moved = [n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert any("layer.0.attention" in n for n in moved)


def test_objectives_share_the_sentence_forward(tmp_path, toy):
    """SA and the toy objective read the same separate-sentence forward: one model call per batch, not two."""
    trainer = _trainer(tmp_path, toy_weight=1.0, sa_weight=1.0)
    assert trainer.args.loss_parts() == ("sa", "toy")
    assert methods_for_alignment(trainer.args) == ["amber", "toy-paper"]
    calls = []
    handle = trainer.model.register_forward_hook(lambda *a: calls.append(1))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    try:
        parts = trainer.compute_loss_parts(trainer.model, batch, None)
    finally:
        handle.remove()
    assert set(parts) == {"sa", "toy"} and len(calls) == 1


def test_registry_refuses_clashes_and_unknown_names(toy):
    with pytest.raises(ConfigError, match="'toy' is registered already"):
        register_objective(TOY)
    with pytest.raises(ConfigError, match="weight field 'sa_weight' is taken by 'sa'"):
        register_objective(dataclasses.replace(TOY, name="toy2", weight_field="sa_weight"))
    with pytest.raises(ConfigError, match=r"part name\(s\) \['tlm'\] taken by 'tlm'"):
        register_objective(dataclasses.replace(TOY, name="toy2", weight_field="toy2_weight", parts=("tlm",)))
    with pytest.raises(ConfigError, match="unknown objective 'nope'; registered: sa, cao, so, mlm, tlm, wa, toy"):
        get_objective("nope")
    assert "toy2" not in OBJECTIVES


def test_an_unknown_collator_need_is_named(tmp_path, toy):
    register_objective(dataclasses.replace(TOY, collator_needs=lambda config: ("images",)), replace=True)
    with pytest.raises(ConfigError, match=r"objective 'toy': unknown collator need\(s\) \['images'\]"):
        _trainer(tmp_path, toy_weight=1.0)


def test_builtin_objectives_declare_what_the_card_cites():
    """Every built-in weight field is an AmberConfig field with help; SO cites awesome-align, TLM cites XLM."""
    fields = {f.name: f for f in dataclasses.fields(AmberConfig)}
    assert list(OBJECTIVES)[:6] == ["sa", "cao", "so", "mlm", "tlm", "wa"]
    for objective in OBJECTIVES.values():
        assert objective.weight_field in fields and fields[objective.weight_field].metadata["help"]
        assert all(f in fields for f in objective.fields)
        assert all(key in METHODS for key in objective.citations(AmberConfig(output_dir="unused")))
    config = AmberConfig(output_dir="unused", so_weight=1.0, cao_weight=1.0, pooling="first")
    assert methods_for_alignment(config) == ["amber", "cao", "awesome-align", "xlm"]
    assert methods_for_alignment(AmberConfig(output_dir="unused", cao_weight=1.0)) == ["amber", "cao", "efimov",
                                                                                     "xlm"]
    assert config.loss_parts() == ("sa", "cao_link", "cao_anchor", "so", "tlm", "wa")
