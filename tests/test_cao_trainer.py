"""CaoTrainer on tiny models built from config with the real mBERT and XLM-R tokenizers."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import mbert_tokenizer, tiny_model_dir, xlmr_tokenizer
from safetensors import safe_open
from transformers import AutoModel, AutoTokenizer

from amber_align.data.encoding import encode_aligned_pairs, filter_links, orient_pairs
from amber_align.data.parallel import ParallelSource, load_parallel
from amber_align.demo import demo_dir
from amber_align.trainers import CaoConfig, CaoTrainer
from amber_align.trainers.pair_collator import AlignedPairCollator

TOKENIZERS = {"mbert": mbert_tokenizer, "xlmr": xlmr_tokenizer}


def demo_pairs(tokenizer, n: int, lang: str = "es", *, anchor_first: bool = False, pooling_links: bool = True):
    """The first n demo pairs (real Tatoeba text with eflomal links), encoded for the trainer."""
    data = demo_dir() / "data"
    src = ParallelSource(file=str(data / f"{lang}-en.txt"), format="bar", src_lang=lang, tgt_lang="en",
                         alignments=str(data / f"{lang}-en.pharaoh"), max_pairs=n)
    ds = load_parallel(src, pretokenized=True)
    if anchor_first:  # swap the columns: English becomes the source side
        ds = ds.map(lambda r: {"src_words": r["tgt_words"], "tgt_words": r["src_words"], "src": r["tgt"],
                               "tgt": r["src"], "src_lang": r["tgt_lang"], "tgt_lang": r["src_lang"],
                               "links": [[j, i] for i, j in r["links"]]})
    ds = filter_links(orient_pairs(ds, "en"))
    return encode_aligned_pairs(ds, tokenizer, max_length=128)


def make_trainer(tmp_path, kind="mbert", n=8, dropout=None, **cfg):
    tok = TOKENIZERS[kind]()
    d = tiny_model_dir(kind, tmp_path / f"tiny-{kind}")
    extra = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    model = AutoModel.from_pretrained(d, **extra)
    teacher = AutoModel.from_pretrained(d, **extra)
    args = CaoConfig(output_dir=str(tmp_path / "out"), model_name_or_path=str(d), report_to=[], use_cpu=True,
                     logging_steps=1, save_strategy="no", **{"max_steps": 3, "per_device_train_batch_size": 4, **cfg})
    ds = demo_pairs(tok, n)
    return CaoTrainer(model=model, args=args, train_dataset=ds, eval_dataset=ds, processing_class=tok,
                      teacher=teacher), ds, d


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
def test_trains_logs_parts_keeps_teacher_frozen(tmp_path, kind):
    trainer, _, d = make_trainer(tmp_path, kind)
    params = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    teacher = {n: p.detach().clone() for n, p in trainer.teacher.named_parameters()}
    trainer.train()
    moved = max((p - params[n]).abs().max().item() for n, p in trainer.model.named_parameters() if n in params)
    assert moved > 0, "trained weights did not move"
    assert all(torch.equal(p, teacher[n]) for n, p in trainer.teacher.named_parameters()), "teacher moved"
    assert all(not p.requires_grad for p in trainer.teacher.parameters())
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert len(steps) == 3
    for h in steps:
        assert {"cao_link", "cao_anchor"} <= h.keys()
        assert h["loss"] == pytest.approx(h["cao_link"] + h["cao_anchor"], rel=1e-4, abs=1e-6)
    metrics = trainer.evaluate()
    assert {"eval_loss", "eval_cao_link", "eval_cao_anchor"} <= metrics.keys()


@pytest.mark.parametrize("kind", ["mbert", "xlmr"])
def test_checkpoint_is_a_plain_encoder_that_automodel_reloads(tmp_path, kind):
    trainer, ds, _ = make_trainer(tmp_path, kind, max_steps=2)
    trainer.train()
    out = tmp_path / "saved"
    trainer.save_model(str(out))
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == {"mbert": "bert", "xlmr": "xlm-roberta"}[kind]
    assert config["architectures"] == [{"mbert": "BertModel", "xlmr": "XLMRobertaModel"}[kind]]
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert not any("teacher" in k or "loss_fn" in k for k in keys)
    reloaded = AutoModel.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    batch = tok(["Hola mundo , ¿ qué tal ?", "Hello world"], return_tensors="pt", padding=True)
    trainer.model.eval()
    with torch.no_grad():
        a = trainer.model(**batch).last_hidden_state
        b = reloaded(**batch).last_hidden_state
    assert torch.equal(a, b)


def _hand_loss(model, teacher, ds, anchor_mode="frozen"):
    """Cao loss computed pair by pair with explicit loops over links (mean pooling), no collator involved."""
    link_sq, n_links, anchor_sq, n_tok, hidden = 0.0, 0, 0.0, 0, None
    for row in ds:
        x = torch.tensor([row["x_input_ids"]])
        y = torch.tensor([row["y_input_ids"]])
        hx = model(input_ids=x).last_hidden_state[0]
        hy = model(input_ids=y).last_hidden_state[0]
        ht = teacher(input_ids=y).last_hidden_state[0]
        hidden = hx.shape[-1]
        target = ht if anchor_mode == "frozen" else hy
        xs, ys = row["x_word_spans"], row["y_word_spans"]
        ends = [((0, 1), (0, 1)), ((len(x[0]) - 1, len(x[0])), (len(y[0]) - 1, len(y[0])))]
        ends += [((xs[2 * i], xs[2 * i + 1]), (ys[2 * j], ys[2 * j + 1])) for i, j in row["xy_links"]]
        for (a, b), (c, d) in ends:
            link_sq += (hx[a:b].mean(0) - target[c:d].mean(0)).pow(2).sum()
            n_links += 1
        anchor_sq += (hy - ht).pow(2).sum()
        n_tok += y.shape[1]
    return link_sq / (n_links * hidden) + anchor_sq / (n_tok * hidden)


@pytest.mark.parametrize("anchor_mode", ["frozen", "current"])
def test_loss_equals_hand_computation_on_two_pairs(tmp_path, anchor_mode):
    trainer, ds, _ = make_trainer(tmp_path, n=2, dropout=0.0, anchor=anchor_mode)
    torch.manual_seed(1)
    with torch.no_grad():  # move the trained model away from the teacher so the anchor term is not zero
        for p in trainer.model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    batch = trainer.data_collator([ds[0], ds[1]])
    assert batch["num_links"] == 4 + len(ds[0]["xy_links"]) + len(ds[1]["xy_links"])
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
        expected = _hand_loss(trainer.model, trainer.teacher, ds.select([0, 1]), anchor_mode)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_orientation_english_in_either_column_gives_the_same_rows():
    tok = mbert_tokenizer()
    a = demo_pairs(tok, 5)
    b = demo_pairs(tok, 5, anchor_first=True)
    for col in ("x_input_ids", "y_input_ids", "x_link_spans", "y_link_spans"):
        assert a[col] == b[col]


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    """GA1 × bs8 and GA2 × bs4 give the same gradient although the halves have different link counts."""
    trainer, ds, _ = make_trainer(tmp_path, n=8, dropout=0.0, gradient_accumulation_steps=2)
    collate = trainer.data_collator
    halves = [collate([ds[i] for i in range(4)]), collate([ds[i] for i in range(4, 8)])]
    assert halves[0]["num_links"] != halves[1]["num_links"]
    whole = collate([ds[i] for i in range(8)])
    model = trainer.model
    model.train()

    def grads(batches):
        model.zero_grad()
        counts = trainer._get_num_items_in_batch(batches, torch.device("cpu"))
        for b in batches:
            trainer.training_step(model, b, counts)
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    g_whole, g_ga = grads([whole]), grads(halves)
    assert g_whole.keys() == g_ga.keys() and g_whole
    for n in g_whole:
        assert torch.allclose(g_whole[n], g_ga[n], atol=1e-6, rtol=1e-4), n


def test_collator_reads_pad_id_from_tokenizer():
    assert AlignedPairCollator(pad_token_id=xlmr_tokenizer().pad_token_id).pad_token_id == 1
    assert AlignedPairCollator(pad_token_id=mbert_tokenizer().pad_token_id).pad_token_id == 0


def test_logged_parts_after_a_resume_equal_the_uninterrupted_run(tmp_path):
    """The first logging window after resuming from checkpoint-2 averages over steps 3-4 (not 1-4)."""
    tok = mbert_tokenizer()
    d = tiny_model_dir("mbert", tmp_path / "tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ds = demo_pairs(tok, 8)

    def trainer(out):
        args = CaoConfig(output_dir=str(out), model_name_or_path=str(d), report_to=[], use_cpu=True, max_steps=4,
                         logging_steps=2, save_strategy="steps", save_steps=2, per_device_train_batch_size=4)
        return CaoTrainer(model=AutoModel.from_pretrained(d), args=args, train_dataset=ds, processing_class=tok)

    full = trainer(tmp_path / "a")
    full.train()
    trainer(tmp_path / "b").train()
    resumed = trainer(tmp_path / "b")
    resumed.train(resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-2"))
    expected = next(h for h in full.state.log_history if h.get("step") == 4 and "cao_anchor" in h)
    got = [h for h in resumed.state.log_history if h.get("step") == 4 and "cao_anchor" in h][-1]
    for part in ("cao_link", "cao_anchor", "loss"):
        assert got[part] == pytest.approx(expected[part], rel=1e-4), part


def test_freeze_word_embeddings_keeps_them_fixed_and_trains_the_rest(tmp_path):
    trainer, _, _ = make_trainer(tmp_path, "xlmr", max_steps=2, freeze_word_embeddings=True)
    embeddings = trainer.model.get_input_embeddings().weight
    before_embeddings = embeddings.detach().clone()
    others = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert "embeddings.word_embeddings.weight" not in others and others
    trainer.train()
    assert torch.equal(embeddings, before_embeddings), "frozen word embeddings moved"
    moved = max((p - others[n]).abs().max().item() for n, p in trainer.model.named_parameters() if n in others)
    assert moved > 0
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert id(embeddings) not in optimised  # no Adam state for the 250k-row matrix
