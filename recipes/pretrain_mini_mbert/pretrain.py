"""Joint masked-LM pretraining of a small multilingual BERT, as mBERT was trained: monolingual sentences of every
language in one model, one shared WordPiece vocabulary, no parallel signal. With an XLM-R tokenizer folder
(``vocab.tsv``, prune_vocab.py on the XLM-R table) the model is a small XLM-R instead (``XLMRobertaForMaskedLM``:
Unigram vocabulary, no token types, positions offset past the padding id, as XLM-R): same data, same size, same
budget, so the two differ in their vocabulary and its tokenization only.

Data: ``mono/{lang}.train.txt`` from build_corpus.py, tokenized once with the pruned tokenizer (prune_vocab.py)
and cached by ``datasets``. Languages are mixed with mBERT's exponentially smoothed sampling
(p_l ∝ n_l^α, α = 0.7: low-resource languages are up-sampled, English down-sampled); one example is one sentence
(truncated to ``--max_length``), batches are grouped by length. Masking is BERT's (15 %, 80/10/10) with
``DataCollatorForLanguageModeling``; the vocabulary projection is computed on masked positions only (a 69k
vocabulary would cost ten times the 4-layer encoder if projected everywhere).

The run checkpoints every ``--save_steps`` and resumes from the newest checkpoint of ``--out`` (so it can be split
across commands of a GPU machine's 10-minute limit). The final model is a plain ``BertForMaskedLM`` or
``XLMRobertaForMaskedLM`` (``AutoModel`` loads its encoder) with its tokenizer and ``mbert_ids.txt`` /
``xlmr_ids.txt`` (its token ids mapped to the full vocabulary's); weights are stored in float16 to fit the 25 MB
budget while ``config.json`` says float32, so every loader upcasts them (the model is trained in float32).

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
from transformers import (BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, PretrainedConfig,
                          PreTrainedModel, Trainer, TrainingArguments, XLMRobertaConfig, XLMRobertaForMaskedLM,
                          set_seed)
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import get_last_checkpoint

from amber_align.errors import DataFormatError
from amber_align.io_utils import read_text_lines
from amber_align.losses.tlm import IGNORE_INDEX, TranslationLanguageModelingLoss
from amber_align.tokenization import build_xlmr_tokenizer, load_mbert_tokenizer

__all__ = ["MaskedLMTrainer", "load_pretraining_tokenizer", "is_xlmr", "sampling_counts", "build_dataset",
           "mini_config", "encoder_and_head", "heldout_perplexity", "training_summary", "write_card", "main"]


def is_xlmr(tokenizer_dir: Path) -> bool:
    """A pruned XLM-R tokenizer folder (``vocab.tsv``), else a pruned mBERT one (``vocab.txt``)."""
    return (Path(tokenizer_dir) / "vocab.tsv").is_file()


def load_pretraining_tokenizer(tokenizer_dir: Path):
    """The pruned tokenizer of prune_vocab.py's output folder: XLM-R's Unigram or mBERT's WordPiece."""
    tokenizer_dir = Path(tokenizer_dir)
    if is_xlmr(tokenizer_dir):
        return build_xlmr_tokenizer(tokenizer_dir / "vocab.tsv")
    if not (tokenizer_dir / "vocab.txt").is_file():
        raise DataFormatError("expected vocab.tsv (a pruned XLM-R table) or vocab.txt (a pruned mBERT vocabulary) "
                              "here: run prune_vocab.py first", path=tokenizer_dir)
    return load_mbert_tokenizer(tokenizer_dir / "vocab.txt")


def encoder_and_head(model: PreTrainedModel) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(encoder, MLM head) of a ``BertForMaskedLM`` (``bert``, ``cls``) or ``XLMRobertaForMaskedLM`` (``roberta``,
    ``lm_head``)."""
    inner = model.module if hasattr(model, "module") else model
    return inner.base_model, (inner.cls if hasattr(inner, "cls") else inner.lm_head)


class MaskedLMTrainer(Trainer):
    """``Trainer`` whose loss projects to the vocabulary on masked positions only (same value as the full MLM loss)."""

    model_accepts_loss_kwargs = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.mlm_loss = TranslationLanguageModelingLoss(1.0, name="mlm")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        encoder, head = encoder_and_head(model)
        hidden = encoder(**inputs).last_hidden_state
        masked = labels != IGNORE_INDEX
        logits = head(hidden[masked])
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


def mini_config(tokenizer, args: argparse.Namespace, *, xlmr: bool = False) -> PretrainedConfig:
    """The mini BERT (or XLM-R) config; special ids are read from the tokenizer. XLM-R numbers positions from
    ``pad_token_id + 1``, so it gets two more position rows than BERT (XLM-R-base: 514 for 512 tokens)."""
    shape = {"vocab_size": len(tokenizer), "hidden_size": args.hidden, "num_hidden_layers": args.layers,
             "num_attention_heads": args.heads, "intermediate_size": 4 * args.hidden,
             "pad_token_id": tokenizer.pad_token_id}
    if xlmr:
        return XLMRobertaConfig(**shape, max_position_embeddings=args.max_positions + tokenizer.pad_token_id + 1,
                                type_vocab_size=1, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id)
    return BertConfig(**shape, max_position_embeddings=args.max_positions, type_vocab_size=2)


@torch.no_grad()
def heldout_perplexity(model: PreTrainedModel, tokenizer, corpus: Path, *, max_length: int, seed: int = 0,
                       batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Per language: MLM loss and perplexity exp(loss) on the held-out sentences, 15 % masked (fixed seed)."""
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    loss_fn = TranslationLanguageModelingLoss(1.0, name="mlm")
    encoder, head = encoder_and_head(model)
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
            hidden = encoder(**batch).last_hidden_state
            n = int(keep.sum())
            total += float(loss_fn(head(hidden[keep]), labels[keep])["mlm"]) * n
            masked += n
        loss = total / max(masked, 1)
        result[lang] = {"mlm_loss": round(loss, 4), "perplexity": round(math.exp(loss), 2), "masked_tokens": masked}
    return result


def save_final(trainer: Trainer, tokenizer, args: argparse.Namespace, extra: dict) -> None:
    """Model (float16 storage, float32 config), tokenizer, the ids map and pretraining.json, written to a temp
    folder and renamed into place so a half-written model never looks complete. Weights tied to others (the MLM
    decoder to the word embeddings) are stored once and re-tied on load: a ``state_dict`` given to
    ``save_pretrained`` keeps the tied copies (18 MB more for the mini mBERT)."""
    final, tmp = args.out / "final", args.out / "final.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    model = trainer.model
    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if k not in tied}
    model.save_pretrained(tmp, state_dict=state)
    cfg = json.loads((tmp / "config.json").read_text())
    cfg["dtype"] = "float32"
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    tokenizer.save_pretrained(tmp)
    for ids in ("mbert_ids.txt", "xlmr_ids.txt"):
        if (args.tokenizer / ids).is_file():
            shutil.copy(args.tokenizer / ids, tmp / ids)
    (tmp / "pretraining.json").write_text(json.dumps(extra, indent=1) + "\n")
    write_card(tmp, model.config, extra)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def write_card(folder: Path, config: PretrainedConfig, extra: dict) -> None:
    """README.md model card (huggingface_hub) with the size, the training budget and the held-out perplexities."""
    from huggingface_hub import ModelCard, ModelCardData

    langs = sorted(extra["heldout"])
    xlmr = config.model_type == "xlm-roberta"
    data = ModelCardData(language=langs, license="other", library_name="transformers", pipeline_tag="fill-mask",
                         tags=["xlm-roberta" if xlmr else "bert", "multilingual", "amber_align", "mini"])
    if xlmr:
        title, kind, original = "mini XLM-R", "A small XLM-R-style encoder", "XLM-R"
        vocabulary = (f"the real XLM-R Unigram vocabulary pruned to the {config.vocab_size:,} pieces the corpus uses "
                      f"at least {extra.get('min_count', 1)} times (`xlmr_ids.txt`: line i = the XLM-R id of token i; "
                      "words whose rarer pieces were dropped take their next-best segmentation)")
    else:
        title, kind, original = "mini multilingual BERT", "A small BERT", "mBERT"
        vocabulary = (f"the real mBERT WordPiece vocabulary pruned to the {config.vocab_size:,} pieces the corpus uses "
                      "(`mbert_ids.txt`: line i = the mBERT id of token i; the pruned tokenizer segments the corpus "
                      "exactly as mBERT does)")
    rows = "\n".join(f"| {lang} | {v['mlm_loss']:.2f} | {v['perplexity']:.0f} | {extra['mixing'][lang]['sentences']} "
                     f"| {extra['mixing'][lang]['epochs']:.2f} |" for lang, v in extra["heldout"].items())
    step = extra.get("resumed_from_step", 0)
    resumed = f" for steps {step + 1}–{extra['steps']}, resumed from the checkpoint at step {step}" if step else ""
    last = f" (last logged {extra['last_logged_loss']})" if extra.get("last_logged_loss") is not None else ""
    text = f"""---
{data.to_yaml()}
---

# {title} ({extra['device']}-scale)

{kind} (hidden {config.hidden_size}, {config.num_hidden_layers} layers, {config.num_attention_heads} heads, \
{extra['encoder_parameters'] / 1e6:.1f}M encoder parameters, \\
{config.vocab_size * config.hidden_size / 1e6:.1f}M of them the word embeddings) pretrained **from scratch** with joint masked LM, as
{original} was (no parallel signal), on the de-duplicated monolingual sides of the en-xx corpora of amber_align's data
folder (18 languages; Tatoeba, XNLI and XQuAD sentences removed), with {vocabulary}. Built by
`recipes/pretrain_mini_mbert/run.sh` for amber_align's small-scale comparison of alignment methods; **not** a
substitute for {original}.

Training: {extra['steps']} steps of {extra['batch_size']} sentences (≤ {extra['max_length']} subwords), AdamW lr \
{extra['learning_rate']}, mBERT's language sampling (α = {extra['alpha']}), {extra['train_runtime_s'] / 60:.0f} min \
on {extra['device']} ({extra['torch_threads']} threads){resumed}. Mean training MLM loss over the run \
{extra['final_train_loss']}{last}.
Weights are stored in float16 (config dtype float32: loaders upcast) to stay under 25 MB.

Held-out MLM ({len(langs)} × 300 sentences, 15 % masked with a fixed seed, at least \\
{min(v['masked_tokens'] for v in extra['heldout'].values())} masked tokens per language):

| language | MLM loss | perplexity | training sentences | epochs seen |
|---|---:|---:|---:|---:|
{rows}

Licence: research use. The vocabulary is {original}'s ({"MIT, BlingFire's export" if xlmr else "Apache-2.0"}); the training text includes research-only (WMT
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
    xlmr = is_xlmr(args.tokenizer)
    tokenizer = load_pretraining_tokenizer(args.tokenizer)
    train, table = build_dataset(args.corpus, tokenizer, total=args.max_steps * args.batch_size, alpha=args.alpha,
                                 max_length=args.max_length, seed=args.seed, cache=args.out / "hf_cache")
    model = (XLMRobertaForMaskedLM if xlmr else BertForMaskedLM)(mini_config(tokenizer, args, xlmr=xlmr))
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
    n_params = sum(p.numel() for p in model.base_model.parameters())
    prune_stats = args.tokenizer / "prune_stats.json"
    min_count = json.loads(prune_stats.read_text()).get("min_count", 1) if prune_stats.is_file() else 1
    extra = {"architecture": type(model).__name__, "min_count": min_count, "steps": args.max_steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
             "alpha": args.alpha, "max_length": args.max_length, "encoder_parameters": n_params,
             **training_summary(trainer.state.log_history, result.metrics, resumed_from=last),
             "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
             "torch_threads": torch.get_num_threads(), "mixing": table, "heldout": ppl}
    save_final(trainer, tokenizer, args, extra)
    print(json.dumps({"heldout": ppl, "train_runtime_s": extra["train_runtime_s"]}, indent=1))


def training_summary(log_history: list[dict[str, Any]], metrics: dict[str, float],
                     resumed_from: str | None = None) -> dict[str, Any]:
    """Loss and time figures for the card that stay true when the run was resumed: the Trainer's own
    ``training_loss`` and ``train_runtime`` cover only the last segment, whereas ``log_history`` is restored from the
    checkpoint and spans the whole run."""
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    step = int(Path(resumed_from).name.rsplit("-", 1)[-1]) if resumed_from else 0
    return {"final_train_loss": round(sum(losses) / len(losses), 4) if losses else None,
            "last_logged_loss": round(losses[-1], 4) if losses else None,
            "train_runtime_s": round(metrics.get("train_runtime", 0.0), 1), "resumed_from_step": step}


def _drop_length(collator: DataCollatorForLanguageModeling):
    """The collator without the ``length`` column (used only by the length-grouped sampler)."""
    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collator([{k: v for k, v in f.items() if k != "length"} for f in features])
    return collate


if __name__ == "__main__":
    main()
