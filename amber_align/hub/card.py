"""Model cards: render a card context with the package's Jinja templates, merge it into an existing README, write.

- Metadata is a ``huggingface_hub.ModelCardData`` (``language``, ``base_model``, ``datasets``, ``license``,
  ``library_name``, ``tags``, ``pipeline_tag``, and ``model-index`` with one result per language and metric when the
  folder holds evaluation results), so the card parses with ``huggingface_hub.ModelCard``.
- The body comes from ``amber_align/hub/templates/{aligned_encoder,task_model}.md.j2`` (package data, loaded with
  ``jinja2.PackageLoader``, so it works from a wheel) and sits between two HTML-comment markers. An existing README
  is updated, not overwritten: text outside the markers is kept as it is (a README without markers keeps all of
  its text and gets the generated block appended), and metadata is merged: lists (tags, languages, datasets) are
  joined, the user's ``license`` wins over the generated one, and keys the card does not generate are kept.
- Evaluation results are read when the card is rendered: ``results.json`` (``amber-align finetune`` /
  ``evaluate``) for ``model-index`` and the tables, ``eval_results.json`` (held-out losses of an alignment run).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from amber_align.errors import DataFormatError
from amber_align.hub.context import CONTEXT_FILE, pipeline_tag, read_context
from amber_align.hub.methods import METHODS
from amber_align.io_utils import atomic_write_text
from amber_align.tasks.registry import TASK_REGISTRY
from amber_align.logging_utils import get_logger

__all__ = ["GENERATED_START", "GENERATED_END", "TEMPLATES", "template_environment", "card_results",
           "render_card", "merge_card", "write_card", "refresh_card"]

logger = get_logger(__name__)

GENERATED_START = ("<!-- amber-align: generated card start. This block is rewritten at every save; "
                   "write your own text outside it. -->")
GENERATED_END = "<!-- amber-align: generated card end -->"
TEMPLATES = {"aligned_encoder": "aligned_encoder.md.j2", "task_model": "task_model.md.j2"}
BASE_TAGS = ("amber-align", "cross-lingual-alignment", "multilingual")
_LIST_KEYS = ("tags", "language", "datasets")



def _task_names(task: str) -> tuple[str, str]:
    """(Hub task type, readable name) of a registered task (``amber_align.tasks.registry``); else the name twice."""
    entry = TASK_REGISTRY.get(task)
    return (entry.hub_type, entry.title) if entry is not None else (task, task)


def template_environment() -> Any:
    """The Jinja environment over the package's card templates. A value the context lacks renders empty (a card
    for a folder amber_align did not train has no training figures) instead of failing."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("amber_align.hub", "templates"),
                              undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, autoescape=False)


# ------------------------------------------------------------------ results
def card_results(folders: Iterable[str | Path], task: str | None = None) -> dict[str, dict[str, Any]]:
    """``{task: results.json entry}`` from the first of ``folders`` that has a ``results.json`` holding them;
    ``task`` keeps only that task (a task model's card shows the task it was trained for)."""
    from amber_align.tasks.results import load_results

    found: dict[str, dict[str, Any]] = {}
    for folder in folders:
        if folder is None or not (Path(folder) / "results.json").is_file():
            continue
        for name, entry in load_results(folder)["tasks"].items():
            if (task is None or name == task) and name not in found:
                found[name] = entry
    return found


def _dataset(task: str, lang: str, context: Mapping[str, Any]) -> tuple[str, str]:
    source = (context.get("eval_sources") or {}).get(lang) if context.get("task") == task else None
    if source:
        return source.split(" / ")[0], f"{source} ({lang})"
    entry = TASK_REGISTRY.get(task)
    if entry is not None and entry.dataset is not None:
        return entry.dataset
    return task, f"{task.upper()} evaluation data"


def _eval_results(results: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]) -> list[Any]:
    from huggingface_hub import EvalResult

    out = []
    for task, entry in results.items():
        task_type, task_name = _task_names(task)
        for lang, metrics in entry["languages"].items():
            dataset_type, dataset_name = _dataset(task, lang, context)
            for metric, value in metrics.items():
                out.append(EvalResult(task_type=task_type, task_name=task_name, dataset_type=dataset_type,
                                      dataset_name=dataset_name, dataset_config=lang, metric_type=metric,
                                      metric_name=f"{metric} ({lang})", metric_value=round(float(value), 4)))
    return out


def _result_tables(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    from amber_align.tasks.results import format_table

    tables = []
    for task, entry in results.items():
        excluded = [lang for lang in entry.get("average_excludes") or [] if lang in entry["languages"]]
        note = f"the average leaves out {', '.join(excluded)}, the training language" if excluded else ""
        tables.append({"title": _task_names(task)[1], "note": note,
                       "table": format_table(entry["languages"], average=entry.get("average"))})
    return tables


# ------------------------------------------------------------------ rendering
def _method_tag(key: str) -> str:
    method = METHODS.get(key)
    return (method.tag if method is not None else "") or f"{key}-alignment"


def _metadata(context: Mapping[str, Any], results: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    kind = context.get("kind", "aligned_encoder")
    tags = list(BASE_TAGS) + [_method_tag(m) for m in context.get("methods") or []]
    if kind == "task_model" and context.get("task"):
        tags.append(f"zero-shot-{context['task']}")
    meta: dict[str, Any] = {
        "language": list(context.get("languages") or []) or None,
        "base_model": context.get("base_model"), "datasets": list(context.get("datasets") or []) or None,
        "license": context.get("base_license"), "library_name": "transformers", "tags": tags,
        "pipeline_tag": pipeline_tag(context.get("task") or kind),
        "model_name": context.get("model_name"),
        "eval_results": _eval_results(results, context) or None,
    }
    for key, value in extra.items():  # explicit arguments (create_model_card, amber-align push) win or add up
        if value is None:
            continue
        meta[key] = _merge_list(meta.get(key), value) if key in _LIST_KEYS else value
    return meta


def render_card(context: Mapping[str, Any], *, results: Mapping[str, Any] | None = None,
                extra_metadata: Mapping[str, Any] | None = None) -> Any:
    """The generated ``huggingface_hub.ModelCard`` of ``context`` (no merging with an existing README)."""
    from huggingface_hub import ModelCard, ModelCardData

    results = dict(results or {})
    kind = context.get("kind", "aligned_encoder")
    if kind not in TEMPLATES:
        raise DataFormatError(f"card context: unknown kind {kind!r}; expected one of {sorted(TEMPLATES)}")
    extra = {k: v for k, v in (extra_metadata or {}).items()}
    data = ModelCardData(**{k: v for k, v in _metadata(context, results, extra).items() if v is not None})
    repo_id = context.get("hub_model_id") or context.get("model_name") or "path/to/model"
    body = template_environment().get_template(TEMPLATES[kind]).render(
        c=context, methods=METHODS, results=_result_tables(results), repo_id=repo_id)
    text = f"\n{GENERATED_START}\n{body.strip()}\n{GENERATED_END}\n"
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{text}")


def _merge_list(old: Any, new: Any) -> Any:
    items = [*(old if isinstance(old, list) else [old] if old else []),
             *(new if isinstance(new, list) else [new] if new else [])]
    return list(dict.fromkeys(items)) or None


def merge_card(existing_text: str, generated: Any, *, explicit: Iterable[str] = ()) -> Any:
    """``generated`` merged into the README text ``existing_text`` (see the module docstring); ``explicit`` names
    metadata keys given explicitly by the caller, which win over the existing README's values."""
    import yaml
    from huggingface_hub import ModelCard

    explicit = set(explicit)
    try:
        existing = ModelCard(existing_text, ignore_metadata_errors=True)
        old, old_text = existing.data.to_dict(), existing.text
    except (ValueError, yaml.YAMLError):  # metadata that is not a YAML mapping: keep all the text, new metadata
        old, old_text = {}, existing_text
    new = generated.data.to_dict()
    merged = dict(old)
    for key, value in new.items():
        if key in _LIST_KEYS:
            merged[key] = _merge_list(old.get(key), value)
        elif key == "license" and old.get(key) and key not in explicit:
            continue  # the user's licence stays
        else:
            merged[key] = value
    block = generated.text[generated.text.index(GENERATED_START):]
    start, end = old_text.find(GENERATED_START), old_text.find(GENERATED_END)
    if start >= 0 and end > start:
        text = old_text[:start] + block.strip("\n") + old_text[end + len(GENERATED_END):]
    else:
        text = (old_text.rstrip() + "\n\n" if old_text.strip() else "\n") + block
    card = ModelCard(f"---\n{generated.data.__class__(**merged, ignore_metadata_errors=True).to_yaml()}\n---\n"
                     + ("" if text.startswith("\n") else "\n") + text)
    return card


def write_card(folder: str | Path, context: Mapping[str, Any], *, results_dirs: Iterable[str | Path] = (),
               extra_metadata: Mapping[str, Any] | None = None, save_context: bool = True,
               merge_with: str | Path | None = None) -> Path:
    """Render ``context`` with the results found in ``folder`` (and ``results_dirs``), merge it into
    ``folder/README.md`` if there is one (else into ``merge_with``, the README the folder's files will replace),
    and write it (atomically); also save the context beside it."""
    folder = Path(folder)
    task = context.get("task") if context.get("kind") == "task_model" else None
    results = card_results([folder, *results_dirs], task=task)
    context = dict(context)
    losses = folder / "eval_results.json"
    if context.get("kind") == "aligned_encoder" and not context.get("eval_losses") and losses.is_file():
        try:
            saved = json.loads(losses.read_text(encoding="utf-8"))
            context["eval_losses"] = {k: v for k, v in saved.items() if k.startswith("eval_")
                                      and "runtime" not in k and "per_second" not in k}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            logger.warning(f"{losses}: not readable JSON; the card leaves the held-out losses out")
    extra = dict(extra_metadata or {})
    card = render_card(context, results=results, extra_metadata=extra)
    readme = folder / "README.md"
    existing = readme if readme.is_file() else Path(merge_with) if merge_with else None
    if existing is not None and existing.is_file():
        card = merge_card(existing.read_text(encoding="utf-8"), card,
                          explicit=[k for k, v in extra.items() if v is not None])
    if save_context:
        atomic_write_text(folder / CONTEXT_FILE, json.dumps(dict(context), indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(readme, str(card))
    return readme


def _minimal_context(folder: Path) -> dict[str, Any]:
    """A context for a model folder that amber_align did not train (no saved context): its config only."""
    from amber_align.hub.context import CONTEXT_SCHEMA

    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"not a model folder: config.json is missing or unreadable ({exc})",
                              path=folder) from None
    arch = (config.get("architectures") or [None])[0]
    return {"schema": CONTEXT_SCHEMA, "kind": "aligned_encoder", "model_name": folder.resolve().name,
            "model": {"architecture": arch, "model_type": config.get("model_type"),
                      "hidden_size": config.get("hidden_size"), "layers": config.get("num_hidden_layers")},
            "methods": [], "hyperparameters": [], "training": None, "config_class": "the run's config"}


def refresh_card(folder: str | Path, *, hub_model_id: str | None = None,
                 extra_metadata: Mapping[str, Any] | None = None) -> Path:
    """Render the card of a finished run folder again (e.g. after ``amber-align evaluate`` wrote results into it)
    from its saved context; a folder without one keeps its README and gets ``extra_metadata`` merged in, or gets
    a minimal card from its ``config.json``."""
    folder = Path(folder)
    context = read_context(folder)
    readme = folder / "README.md"
    extra = {k: v for k, v in (extra_metadata or {}).items() if v is not None}
    if context is None and readme.is_file():
        from huggingface_hub import ModelCard

        card = ModelCard(readme.read_text(encoding="utf-8"), ignore_metadata_errors=True)
        for key, value in extra.items():
            card.data[key] = value
        atomic_write_text(readme, str(card))
        return readme
    context = dict(context or _minimal_context(folder))
    if extra.get("base_model"):  # named by the caller (e.g. push --base-model): the text links it too
        context["base_model"] = extra["base_model"]
    if hub_model_id:
        context["hub_model_id"] = hub_model_id
        context["model_name"] = hub_model_id.split("/")[-1]
    if "wang" not in (context.get("methods") or []) and (folder / "alignment_maps.json").is_file():
        context["methods"] = [*(context.get("methods") or []), "wang"]
    return write_card(folder, context, extra_metadata=extra, save_context=read_context(folder) is not None)
