"""Joint masked-LM pretraining of a small multilingual BERT, as mBERT was trained: monolingual sentences of every
language in one model, one shared WordPiece vocabulary, no parallel signal.

Data: ``mono/{lang}.train.txt`` from build_corpus.py, tokenized once with the pruned mBERT tokenizer
(prune_vocab.py) and cached by ``datasets``. Languages are mixed with mBERT's exponentially smoothed sampling
(p_l ∝ n_l^α, α = 0.7: low-resource languages are up-sampled, English down-sampled); one example is one sentence
(truncated to ``--max_length``), batches are grouped by length. Masking is BERT's (15 %, 80/10/10) with
``DataCollatorForLanguageModeling``; the vocabulary projection is computed on masked positions only (a 69k
vocabulary would cost ten times the 4-layer encoder if projected everywhere).

The run checkpoints every ``--save_steps`` and resumes from the newest checkpoint of ``--out`` (so it can be split
across commands of a GPU machine's 10-minute limit). The final model is a plain ``BertForMaskedLM`` (``AutoModel``
loads its encoder) with its tokenizer and ``mbert_ids.txt``; weights are stored in float16 to fit the 25 MB budget
while ``config.json`` says float32, so every loader upcasts them (the model is trained in float32).

    python recipes/pretrain_mini_mbert/pretrain.py --corpus runs/mini_mbert/corpus \
        --tokenizer runs/mini_mbert/tokenizer --out runs/mini_mbert/model --max_steps 3000
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import (BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, Trainer,
                          TrainingArguments, set_seed)
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import get_last_checkpoint

from amber_align.io_utils import read_text_lines
from amber_align.losses.tlm import IGNORE_INDEX, TranslationLanguageModelingLoss
from amber_align.tokenization import load_mbert_tokenizer

__all__ = ["MaskedLMTrainer", "sampling_counts", "build_dataset", "mini_config", "heldout_perplexity", "main"]


# The MLM decoder is tied to the word embeddings (re-tied on load): stored once.
TIED_KEYS = ("cls.predictions.decoder.weight",)


class MaskedLMTrainer(Trainer):
    """``Trainer`` whose loss projects to the vocabulary on masked positions only (same value as the full MLM loss)."""

    model_accepts_loss_kwargs = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.mlm_loss = TranslationLanguageModelingLoss(1.0, name="mlm")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        inner = model.module if hasattr(model, "module") else model
        hidden = inner.bert(**inputs).last_hidden_state
        masked = labels != IGNORE_INDEX
        logits = inner.cls(hidden[masked])
        loss = self.mlm_loss(logits, labels[masked])["mlm"]
        return (loss, {"logits": logits}) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        """Length-grouped sampling from a plain list of lengths: the stock sampler indexes the datasets ``Column``
        one element at a time, which takes minutes on 768k sentences."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                    lengths=list(dataset[self.args.length_column_name]))


def sampling_counts(sizes: dict[str, int], total: int, alpha: float) -> dict[str, int]:
    """Examples per language for ``total`` draws with p_l ∝ n_l^α (mBERT's smoothing)."""
    weights = {lang: n ** alpha for lang, n in sizes.items()}
    norm = sum(weights.values())
    return {lang: max(1, round(total * w / norm)) for lang, w in weights.items()}


def _tokenized(corpus: Path, lang: str, split: str, tokenizer, max_length: int, cache: Path) -> datasets.Dataset:
    raw = datasets.load_dataset("text", data_files=str(corpus / "mono" / f"{lang}.{split}.txt"), split="train",
                                cache_dir=str(cache))
    raw = raw.filter(lambda row: bool(row["text"].strip()))
    return raw.map(lambda rows: tokenizer(rows["text"], truncation=True, max_length=max_length,
                                          return_special_tokens_mask=True),
                   batched=True, remove_columns=["text"], desc=f"tokenizing {lang}.{split}")


def build_dataset(corpus: Path, tokenizer, *, total: int, alpha: float, max_length: int, seed: int,
                  cache: Path) -> tuple[datasets.Dataset, dict[str, dict[str, float]]]:
    """The mixed training set (``total`` sentences, re-drawn with replacement per language) and the mixing table."""
    langs = sorted(path.name.split(".")[0] for path in (corpus / "mono").glob("*.train.txt"))
    parts = {lang: _tokenized(corpus, lang, "train", tokenizer, max_length, cache) for lang in langs}
    counts = sampling_counts({lang: len(ds) for lang, ds in parts.items()}, total, alpha)
    rng = np.random.default_rng(seed)
    chosen = []
    for lang, ds in parts.items():
        n = counts[lang]
        index = np.concatenate([rng.permutation(len(ds)) for _ in range(math.ceil(n / len(ds)))])[:n]
        chosen.append(ds.select(index.tolist()))
    mixed = datasets.concatenate_datasets(chosen).shuffle(seed=seed)
    mixed = mixed.map(lambda rows: {"length": [len(x) for x in rows["input_ids"]]}, batched=True)
    table = {lang: {"sentences": len(parts[lang]), "drawn": counts[lang],
                    "epochs": round(counts[lang] / len(parts[lang]), 3)} for lang in langs}
    return mixed, table


def mini_config(vocab_size: int, args: argparse.Namespace) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=args.hidden, num_hidden_layers=args.layers,
                      num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                      max_position_embeddings=args.max_positions, type_vocab_size=2, pad_token_id=0)


@torch.no_grad()
def heldout_perplexity(model: BertForMaskedLM, tokenizer, corpus: Path, *, max_length: int, seed: int = 0,
                       batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Per language: MLM loss and perplexity exp(loss) on the held-out sentences, 15 % masked (fixed seed)."""
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    loss_fn = TranslationLanguageModelingLoss(1.0, name="mlm")
    model.eval()
    result = {}
    for path in sorted((corpus / "mono").glob("*.heldout.txt")):
        lang = path.name.split(".")[0]
        lines = [line for line in read_text_lines(path, what="held-out file")[0] if line.strip()]
        torch.manual_seed(seed)
        total, masked = 0.0, 0
        for start in range(0, len(lines), batch_size):
            enc = tokenizer(lines[start:start + batch_size], truncation=True, max_length=max_length,
                            return_special_tokens_mask=True)
            batch = collator([{k: enc[k][i] for k in enc} for i in range(len(enc["input_ids"]))])
            labels = batch.pop("labels")
            keep = labels != IGNORE_INDEX
            hidden = model.bert(**batch).last_hidden_state
            n = int(keep.sum())
            total += float(loss_fn(model.cls(hidden[keep]), labels[keep])["mlm"]) * n
            masked += n
        loss = total / max(masked, 1)
        result[lang] = {"mlm_loss": round(loss, 4), "perplexity": round(math.exp(loss), 2), "masked_tokens": masked}
    return result


def save_final(trainer: Trainer, tokenizer, args: argparse.Namespace, extra: dict) -> None:
    """Model (float16 storage, float32 config), tokenizer, mbert_ids.txt and pretraining.json, written to a temp
    folder and renamed into place so a half-written model never looks complete."""
    final, tmp = args.out / "final", args.out / "final.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    model = trainer.model
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()
             if k not in TIED_KEYS}  # a state_dict given to save_pretrained keeps tied copies: 18 MB more
    model.save_pretrained(tmp, state_dict=state)
    cfg = json.loads((tmp / "config.json").read_text())
    cfg["dtype"] = "float32"
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    tokenizer.save_pretrained(tmp)
    shutil.copy(args.tokenizer / "mbert_ids.txt", tmp / "mbert_ids.txt")
    (tmp / "pretraining.json").write_text(json.dumps(extra, indent=1) + "\n")
    write_card(tmp, model.config, extra)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def write_card(folder: Path, config: BertConfig, extra: dict) -> None:
    """README.md model card (huggingface_hub) with the size, the training budget and the held-out perplexities."""
    from huggingface_hub import ModelCard, ModelCardData

    langs = sorted(extra["heldout"])
    data = ModelCardData(language=langs, license="other", library_name="transformers", pipeline_tag="fill-mask",
                         tags=["bert", "multilingual", "amber_align", "mini"])
    rows = "\n".join(f"| {lang} | {v['mlm_loss']:.2f} | {v['perplexity']:.0f} | {extra['mixing'][lang]['sentences']} "
                     f"| {extra['mixing'][lang]['epochs']:.2f} |" for lang, v in extra["heldout"].items())
    text = f"""---
{data.to_yaml()}
---

# mini multilingual BERT ({extra['device']}-scale)

A small BERT (hidden {config.hidden_size}, {config.num_hidden_layers} layers, {config.num_attention_heads} heads, \
{extra['encoder_parameters'] / 1e6:.1f}M encoder parameters, \\
{config.vocab_size * config.hidden_size / 1e6:.1f}M of them the word embeddings) pretrained **from scratch** with joint masked LM, as
mBERT was (no parallel signal), on the de-duplicated monolingual sides of the en-xx corpora of amber_align's data
folder (18 languages; Tatoeba, XNLI and XQuAD sentences removed), with the real mBERT WordPiece vocabulary pruned to
the {config.vocab_size:,} pieces the corpus uses (`mbert_ids.txt`: line i = the mBERT id of token i; the pruned
tokenizer segments the corpus exactly as mBERT does). Built by `recipes/pretrain_mini_mbert/run.sh` for
amber_align's small-scale comparison of alignment methods; **not** a substitute for mBERT.

Training: {extra['steps']} steps of {extra['batch_size']} sentences (≤ {extra['max_length']} subwords), AdamW lr \
{extra['learning_rate']}, mBERT's language sampling (α = {extra['alpha']}), {extra['train_runtime_s'] / 60:.0f} min \
on {extra['device']} ({extra['torch_threads']} threads). Mean training MLM loss over the run {extra['final_train_loss']}.
Weights are stored in float16 (config dtype float32: loaders upcast) to stay under 25 MB.

Held-out MLM ({len(langs)} × 300 sentences, 15 % masked with a fixed seed, at least \\
{min(v['masked_tokens'] for v in extra['heldout'].values())} masked tokens per language):

| language | MLM loss | perplexity | training sentences | epochs seen |
|---|---:|---:|---:|---:|
{rows}

Licence: research use. The vocabulary is mBERT's (Apache-2.0); the training text includes research-only (WMT
newstest) and non-commercial (Multi30k) sets besides CC BY-SA (FLORES-200, NTREX-128) and CC BY / CC0 ones.
"""
    ModelCard(text).save(folder / "README.md")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("runs/mini_mbert/corpus"))
    parser.add_argument("--tokenizer", type=Path, default=Path("runs/mini_mbert/tokenizer"))
    parser.add_argument("--out", type=Path, default=Path("runs/mini_mbert/model"))
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--max_positions", type=int, default=256)
    parser.add_argument("--max_length", type=int, default=64, help="pretraining sentence length in subwords")
    parser.add_argument("--max_steps", type=int, default=3000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=0.7, help="language sampling exponent (mBERT: 0.7)")
    parser.add_argument("--save_steps", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    args = parser.parse_args(argv)

    set_seed(args.seed)
    tokenizer = load_mbert_tokenizer(args.tokenizer / "vocab.txt")
    train, table = build_dataset(args.corpus, tokenizer, total=args.max_steps * args.batch_size, alpha=args.alpha,
                                 max_length=args.max_length, seed=args.seed, cache=args.out / "hf_cache")
    model = BertForMaskedLM(mini_config(len(tokenizer), args))
    training_args = TrainingArguments(
        output_dir=str(args.out), max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, weight_decay=0.01, adam_beta2=0.98, adam_epsilon=1e-6,
        warmup_steps=0.06, lr_scheduler_type="linear", logging_steps=50, save_steps=args.save_steps,
        save_total_limit=2, train_sampling_strategy="group_by_length", length_column_name="length",
        report_to="none", seed=args.seed, bf16=args.bf16, dataloader_num_workers=0,
        remove_unused_columns=False)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    trainer = MaskedLMTrainer(model=model, args=training_args, train_dataset=train, data_collator=_drop_length(collator), processing_class=tokenizer)
    last = get_last_checkpoint(str(args.out)) if args.out.exists() else None
    result = trainer.train(resume_from_checkpoint=last)
    model = trainer.model.float().cpu()
    ppl = heldout_perplexity(model, tokenizer, args.corpus, max_length=args.max_length)
    n_params = sum(p.numel() for p in model.bert.parameters())
    extra = {"steps": args.max_steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
             "alpha": args.alpha, "max_length": args.max_length, "encoder_parameters": n_params,
             "train_runtime_s": round(result.metrics.get("train_runtime", 0.0), 1),
             "final_train_loss": round(result.training_loss, 4),
             "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
             "torch_threads": torch.get_num_threads(), "mixing": table, "heldout": ppl}
    save_final(trainer, tokenizer, args, extra)
    print(json.dumps({"heldout": ppl, "train_runtime_s": extra["train_runtime_s"]}, indent=1))


def _drop_length(collator: DataCollatorForLanguageModeling):
    """The collator without the ``length`` column (used only by the length-grouped sampler)."""
    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collator([{k: v for k, v in f.items() if k != "length"} for f in features])
    return collate


if __name__ == "__main__":
    main()
