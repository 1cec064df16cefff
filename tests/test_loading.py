"""An aligned checkpoint as a downstream user loads it: ``AutoModel``, ``AutoModelForTokenClassification`` with a
new head, and ``pipeline("feature-extraction")`` (README "Loading an aligned checkpoint")."""

from __future__ import annotations

import pytest
import torch
from test_hub_card import aligned_run
from transformers import AutoModel, AutoModelForTokenClassification, AutoTokenizer, pipeline

SENTENCE = "Peter Blackburn besucht Berlin."


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("aligned")
    trainer = aligned_run(tmp)
    trained = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    return tmp / "out", trained


def test_automodel_loads_every_trained_weight(aligned):
    out, trained = aligned
    model, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert type(model).__name__ == "BertModel"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, trained[name]), name


def test_token_classification_gets_a_new_head_on_the_aligned_encoder(aligned):
    out, trained = aligned
    model, info = AutoModelForTokenClassification.from_pretrained(
        out, num_labels=5, id2label={i: t for i, t in enumerate(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])},
        output_loading_info=True)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}  # only the head is new
    assert all(k.startswith("pooler.") for k in info["unexpected_keys"])  # the token head has no pooler
    for name, tensor in model.bert.state_dict().items():
        assert torch.equal(tensor, trained[name]), name
    tokenizer = AutoTokenizer.from_pretrained(out)
    logits = model(**tokenizer([SENTENCE], return_tensors="pt")).logits
    assert logits.shape[-1] == 5 and model.config.id2label[3] == "B-LOC"


def test_feature_extraction_pipeline_gives_the_encoder_output(aligned):
    out, _ = aligned
    extractor = pipeline("feature-extraction", model=str(out), device="cpu")
    features = torch.tensor(extractor(SENTENCE))  # [1, tokens, hidden]
    model, tokenizer = AutoModel.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    encoded = tokenizer([SENTENCE], return_tensors="pt")
    with torch.no_grad():
        expected = model(**encoded).last_hidden_state
    assert features.shape == expected.shape == (1, encoded["input_ids"].shape[1], model.config.hidden_size)
    assert torch.allclose(features, expected, atol=1e-5)
    # the cased vocabulary survives the save: "Berlin" and "berlin" are different pieces
    assert tokenizer("Berlin")["input_ids"] != tokenizer("berlin")["input_ids"]


def test_transformers_load_report_is_shown_once_per_checkpoint(tmp_path):
    """Issue 23 item 9: a checkpoint without a pooler (multilingual-e5) printed transformers' LOAD REPORT twice,
    for the student and for the frozen teacher loaded from the same folder. The repeat is silent; the loaded
    weights are the same."""
    from transformers import BertModel

    from amber_align.modeling import load_encoder
    from helpers import tiny_config

    BertModel(tiny_config("mbert"), add_pooling_layer=False).save_pretrained(tmp_path / "nopooler")
    import logging

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    keep = Keep()  # on the logger that writes the report (transformers' own loggers do not propagate to root)
    logging.getLogger("transformers.modeling_utils").addHandler(keep)
    try:
        student = load_encoder(str(tmp_path / "nopooler"))
        teacher = load_encoder(str(tmp_path / "nopooler"))
    finally:
        logging.getLogger("transformers.modeling_utils").removeHandler(keep)
    reports = [m for m in keep.messages if "LOAD REPORT" in m]
    assert len(reports) == 1 and "pooler.dense.weight" in reports[0]
    assert torch.equal(student.embeddings.word_embeddings.weight, teacher.embeddings.word_embeddings.weight)
