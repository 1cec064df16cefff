"""What a model card says about a run, gathered from a trainer into a JSON-serialisable dict (the "card context").

The context holds no absolute paths and no token: data sources are named by file name or Hub id, the starting
model by Hub id (or, for a local folder, by its folder name). It is saved beside the checkpoint as
``amber_align_card.json`` so that the card can be rendered again later without the trainer (``amber-align push``
after ``amber-align evaluate`` has added a ``results.json`` to the folder).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from amber_align.hub.methods import methods_for_alignment
from amber_align.tasks.registry import get_task

__all__ = ["CONTEXT_FILE", "CONTEXT_SCHEMA", "pipeline_tag", "non_default_hyperparameters", "describe_source",
           "base_model_info", "read_context", "training_figures", "alignment_context", "task_context"]

CONTEXT_FILE = "amber_align_card.json"
CONTEXT_SCHEMA = 1
def pipeline_tag(kind_or_task: str | None) -> str | None:
    """The Hub pipeline tag of an aligned encoder (``aligned_encoder``) or of a model fine-tuned on a registered
    task (``amber_align.tasks.registry``)."""
    from amber_align.tasks.registry import TASK_REGISTRY

    if kind_or_task == "aligned_encoder":
        return "feature-extraction"
    task = TASK_REGISTRY.get(kind_or_task or "")
    return task.pipeline_tag if task is not None else None

# Fields that are not hyperparameters of the run: where things are, how it is logged or pushed, and fields the
# card shows elsewhere (data, starting model). Any field ending in "_token" is left out too.
_NOT_HYPERPARAMETERS = frozenset({
    "output_dir", "logging_dir", "run_name", "report_to", "project", "trackio_space_id", "push_to_hub",
    "hub_model_id", "hub_strategy", "hub_private_repo", "hub_always_push", "hub_revision", "resume_from_checkpoint",
    "model_name_or_path", "tokenizer_name_or_path", "train_data", "eval_data", "continual_data",
    "dedup_eval_files", "alignment_cache_dir", "results_dir", "data_dir", "continual_anchor_model",
    "run_name_in_results", "remove_unused_columns", "local_rank", "save_model", "label_list",
    "logging_steps", "logging_strategy", "logging_first_step", "disable_tqdm", "log_level", "log_level_replica",
    "save_strategy", "save_steps", "save_total_limit", "save_only_model", "dataloader_num_workers",
    "dataloader_pin_memory", "dataloader_persistent_workers", "ddp_backend", "method", "task",
})


def _plain(value: Any) -> Any:
    """A JSON-friendly copy: enums by value, tuples as lists, floats rounded for display, paths as strings."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, float):
        return value if not math.isfinite(value) else float(f"{value:.6g}")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _defaults(args: Any) -> dict[str, Any]:
    """The declared defaults of ``args``'s fields. (A default instance would be closer to what ``__post_init__``
    makes of them, but building a ``TrainingArguments`` resets accelerate's global state under a live trainer.)"""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(args):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    if out.get("accelerator_config", 0) is None:  # __post_init__ turns None into AcceleratorConfig()
        from transformers.trainer_pt_utils import AcceleratorConfig

        out["accelerator_config"] = AcceleratorConfig()
    return out


def non_default_hyperparameters(args: Any) -> list[dict[str, Any]]:
    """``[{name, value, default}]`` for every field of ``args`` whose value differs from its class default.

    The class default is the method's recipe (``CaoConfig`` defaults to Cao et al.'s optimiser settings), so the
    list is exactly what this run changed. Paths, logging, saving and Hub fields are left out, and so is every
    ``*_token`` field (a token must never reach a card).
    """
    defaults = _defaults(args)
    rows = []
    for f in dataclasses.fields(args):
        name = f.name
        if not f.init or name in _NOT_HYPERPARAMETERS or name.endswith("_token") or name.startswith("_"):
            continue
        default = defaults.get(name, dataclasses.MISSING)
        if default is dataclasses.MISSING:
            continue
        value, default = _plain(getattr(args, name, None)), _plain(default)
        if value == default or (not value and not default):  # e.g. None ("unset", filled in later) vs [] or False
            continue
        rows.append({"name": name, "value": value, "default": default})
    return rows


def describe_source(source: Any) -> str:
    """A data source named without its directory: the file name(s), or the Hub dataset id (+ config, split)."""
    if isinstance(source, dict):
        if source.get("hub") or source.get("dataset"):
            name = str(source.get("hub") or source.get("dataset"))
            parts = [name if _is_repo_id(name) and not Path(name).exists() else Path(name).name]  # no local path
            parts += [str(source[k]) for k in ("name", "dataset_config", "split") if source.get(k)]
            return " / ".join(parts)
        files = [source[k] for k in ("file", "src_file", "tgt_file") if source.get(k)]
        if files:
            return " + ".join(Path(str(p)).name for p in files)
        return "in-memory dataset"
    if source is None:
        return "—"
    return Path(str(source)).name


def _hub_dataset_ids(sources: list[Any]) -> list[str]:
    ids = []
    for source in sources:
        if isinstance(source, dict):
            name = source.get("hub") or source.get("dataset")
            if isinstance(name, str) and not Path(name).exists() and _is_repo_id(name):
                ids.append(name)
    return list(dict.fromkeys(ids))


def _is_repo_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return not name.startswith((".", "/", "~"))


def read_context(folder: str | Path) -> dict[str, Any] | None:
    """The card context saved in ``folder`` (``amber_align_card.json``), or None when there is none or it is not a
    context this version writes."""
    path = Path(folder) / CONTEXT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == CONTEXT_SCHEMA else None


def base_model_info(name_or_path: str | None) -> dict[str, Any]:
    """The starting model: ``hub_id`` (for ``base_model``) when it is a Hub id, else ``local_name`` (the folder's
    name); ``license`` (and ``base_model``, when it names a Hub id: a converted offline model's README does) from a
    local folder's README metadata; ``context`` when the folder is an amber_align run (so a task model's card can say
    how its encoder was aligned)."""
    info: dict[str, Any] = {"hub_id": None, "local_name": None, "license": None, "context": None}
    if not name_or_path:
        return info
    path = Path(name_or_path)
    if not path.is_dir():
        info["hub_id"] = name_or_path if _is_repo_id(name_or_path) else None
        return info
    info["local_name"] = path.resolve().name
    context = read_context(path)
    if context is not None:
        info["context"] = {k: context.get(k) for k in ("kind", "methods", "parallel_data", "base_model",
                                                        "languages", "hub_model_id", "model_name")}
        info["hub_id"] = context.get("hub_model_id")
    readme = path / "README.md"
    if readme.is_file():
        from huggingface_hub import ModelCard

        try:
            data = ModelCard.load(readme, ignore_metadata_errors=True).data
            info["license"] = data.get("license")
            base = data.get("base_model")  # e.g. a converted offline model names the Hub checkpoint it stands for
            if info["hub_id"] is None and isinstance(base, str) and _is_repo_id(base):
                info["hub_id"] = base
        except (OSError, ValueError):
            pass
    return info


def training_figures(trainer: Any, *, tokens: int | None, started: float | None) -> dict[str, Any]:
    """Steps, epochs, tokens, wall time and throughput of the run so far (the final Trainer metrics once
    training has ended), plus the batch layout and hardware."""
    import torch

    state, args = trainer.state, trainer.args
    history = list(state.log_history)
    # the Trainer's end-of-training metrics (steps' logs may carry train_runtime too, with token counting on)
    final = next((h for h in reversed(history) if "train_loss" in h and "train_runtime" in h), None)
    seconds = final["train_runtime"] if final else (time.time() - started if started else None)
    losses = [h["loss"] for h in history if "loss" in h]
    device = args.device
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    mixed = getattr(args, "mixed_precision", None) or ("bf16" if args.bf16 else "fp16" if args.fp16 else "no")
    precision = "fp32" if str(mixed) == "no" else str(mixed)  # accelerate launch's setting, or bf16/fp16 flags
    world = args.world_size
    backend = torch.distributed.get_backend() if torch.distributed.is_available() and \
        torch.distributed.is_initialized() else None  # the real one (a CPU launch is gloo: launch_guard)
    figures: dict[str, Any] = {
        "steps": state.global_step, "max_steps": state.max_steps, "epochs": round(state.epoch or 0.0, 3),
        "world_size": world, "per_device_batch": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "hardware": f"{world} × {hardware}" + (f" ({backend})" if backend and world > 1 else ""), "backend": backend,
        "precision": precision, "tokens": tokens, "wall_seconds": round(seconds, 1) if seconds else None,
        "tokens_per_second": round(tokens / seconds, 1) if tokens and seconds else None,
        "steps_per_second": (final or {}).get("train_steps_per_second")
        or (round(state.global_step / seconds, 3) if seconds and state.global_step else None),
        "samples_per_second": (final or {}).get("train_samples_per_second"),
        "final_loss": round(losses[-1], 6) if losses else (final or {}).get("train_loss"),
        "train_loss": (final or {}).get("train_loss"), "finished": final is not None,
    }
    return _plain(figures)


def _model_summary(model: Any) -> dict[str, Any]:
    config = model.config
    return {"architecture": type(model).__name__, "model_type": getattr(config, "model_type", None),
            "hidden_size": getattr(config, "hidden_size", None), "layers": getattr(config, "num_hidden_layers", None),
            "parameters": _parameter_count(model)}


def _parameter_count(model: Any) -> int | None:
    """The model's number of parameters; under DeepSpeed ZeRO-3 each process holds empty placeholders, whose full
    size is ``ds_numel`` (``num_parameters()`` counted the placeholders: 22,368 of a 3.8M-parameter model)."""
    if not hasattr(model, "parameters"):
        return None
    unique = {id(p): p for p in model.parameters()}.values()
    return int(sum(getattr(p, "ds_numel", p.numel()) for p in unique))


def _versions() -> dict[str, str]:
    import torch
    import transformers

    import amber_align

    return {"amber_align": amber_align.__version__, "transformers": transformers.__version__,
            "torch": torch.__version__}


def _pair_counts(dataset: Any) -> Counter:
    if dataset is None or "pair" not in getattr(dataset, "column_names", ()):
        return Counter()
    return Counter(dataset["pair"])


def _languages(datasets_: list[Any], first: str | None) -> list[str]:
    langs: set[str] = set()
    for ds in datasets_:
        if ds is not None and {"src_lang", "tgt_lang"} <= set(ds.column_names):
            # select the two columns first: ``unique`` on a dataset with an indices mapping (a filtered or selected
            # one) rewrites every column, token ids and links included (38 s at 70k pairs, on every checkpoint)
            # (streamed pairs, PairStreams, know their languages without data and have no select_columns)
            small = ds.select_columns(["src_lang", "tgt_lang"]) if hasattr(ds, "select_columns") else ds
            langs |= set(small.unique("src_lang")) | set(small.unique("tgt_lang"))
    return sorted(langs, key=lambda lang: (lang != first, lang))


def _parallel_rows(train: Any, held_out: Any) -> list[dict[str, Any]]:
    """Pairs per language pair used for training (and held out for eval losses)."""
    counts, held = _pair_counts(train), _pair_counts(held_out)
    return [{"pair": pair, "pairs": counts.get(pair, 0), "held_out": held.get(pair, 0)}
            for pair in sorted(set(counts) | set(held))]


def _common(trainer: Any, kind: str, figures: dict[str, Any]) -> dict[str, Any]:
    args = trainer.args
    base = base_model_info(getattr(args, "model_name_or_path", None))
    name = (args.hub_model_id or Path(args.output_dir).resolve().name)
    return {"schema": CONTEXT_SCHEMA, "kind": kind, "model_name": name.split("/")[-1],
            "hub_model_id": args.hub_model_id, "base_model": base["hub_id"], "base_model_local": base["local_name"],
            "base_license": base["license"], "base_context": base["context"],
            "model": _model_summary(trainer.accelerator.unwrap_model(trainer.model)),
            "config_class": type(args).__name__, "hyperparameters": non_default_hyperparameters(args),
            "training": figures, "versions": _versions(), "seed": args.seed}


def alignment_context(trainer: Any, *, tokens: int | None = None, started: float | None = None) -> dict[str, Any]:
    """The card context of an alignment run (``AlignmentTrainer`` and its ``AlignmentConfig``)."""
    args = trainer.args
    context = _common(trainer, "aligned_encoder", training_figures(trainer, tokens=tokens, started=started))
    sources = list(args.train_data) + list(args.eval_data)
    history = [h for h in trainer.state.log_history if any(k.startswith("eval_") for k in h)]
    methods = methods_for_alignment(args)
    context.update(
        method=args.method,
        methods=methods,
        loss_parts=list(args.loss_parts()),
        languages=_languages([trainer.train_dataset, trainer.eval_dataset], args.anchor_language),
        anchor_language=args.anchor_language, pooling=args.pooling, layer=args.layer,
        anchor=getattr(args, "anchor", None) if "cao" in methods else None,
        parallel_data=_parallel_rows(trainer.train_dataset, trainer.eval_dataset),
        sources=[describe_source(s) for s in sources], datasets=_hub_dataset_ids(sources),
        eval_losses=_plain({k: v for k, v in history[-1].items() if k.startswith("eval_") and "runtime" not in k
                            and "per_second" not in k}) if history else {},
    )
    return context


def task_context(trainer: Any, *, tokens: int | None = None, started: float | None = None) -> dict[str, Any]:
    """The card context of a fine-tuned task model (the task Trainer of ``amber-align finetune`` and its
    ``TaskConfig``); with continual learning, the parallel pool too."""
    args = trainer.args
    context = _common(trainer, "task_model", training_figures(trainer, tokens=tokens, started=started))
    model = trainer.accelerator.unwrap_model(trainer.model)
    id2label = getattr(model.config, "id2label", None) or {}
    eval_langs = args.eval_languages()
    methods = list((context["base_context"] or {}).get("methods") or [])
    pool = getattr(trainer, "alignment_pairs", None)
    if args.continual_alignment:
        methods += [m for m in ("cao", "efimov") if m not in methods]
    sources = [args.train_data, *[args.eval_data[lang] for lang in eval_langs], *args.continual_data]
    context.update(
        task=args.task, pipeline_tag=pipeline_tag(args.task), methods=methods,
        labels=[id2label[i] for i in sorted(id2label)] if get_task(args.task).labels else [],
        train_language=args.train_language, train_source=describe_source(args.train_data),
        train_features=len(trainer.train_dataset) if trainer.train_dataset is not None else None,
        eval_sources={lang: describe_source(args.eval_data[lang]) for lang in eval_langs},
        languages=list(dict.fromkeys([args.train_language, *eval_langs])),
        continual=args.continual_alignment,
        parallel_data=_parallel_rows(pool, None) if pool is not None else [],
        datasets=_hub_dataset_ids(sources),
    )
    return context
