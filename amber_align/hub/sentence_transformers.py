"""The sentence-transformers round trip: an aligned checkpoint that ``SentenceTransformer(path)`` loads with the
pipeline of its source model (pooling, Normalize, Dense, ...), or with the mean pooling of the XSR evaluation.

Why: the trainers save a plain encoder (``config.json``, weights, tokenizer). A sentence-transformers folder such as
all-MiniLM-L6-v2 also has ``modules.json`` and one folder per module after the encoder; without them
``SentenceTransformer(output)`` builds a default pipeline (mean pooling, no Normalize), so the aligned MiniLM's
embeddings have norms of about 5 instead of 1, and a Dense head would be dropped without a word.

- :func:`copy_sentence_transformers_modules`: ``modules.json``, ``config_sentence_transformers.json``,
  ``sentence_bert_config.json`` and every module folder of a source model (``1_Pooling/``, ``2_Normalize/``,
  ``2_Dense/``...) into a saved model, everything except the encoder's own weights, config and tokenizer (the
  trainer writes those). An encoder kept in a subfolder (``0_Transformer/``, old sentence-transformers) is pointed
  at the folder's root, where the aligned weights are.
- :func:`write_sentence_transformers_config`: a two-module pipeline (Transformer, mean Pooling) for any saved
  encoder, so ``SentenceTransformer(path).encode`` gives ``amber_align.tasks.retrieval.encode_sentences``' vectors:
  the mean of the last layer over every non-pad token, special tokens included, inputs cut at 128 tokens.
- :class:`SentenceTransformersModules`: the alignment trainers' mixin, driven by ``sentence_transformers_modules``
  (``auto``, ``always``, ``never``; ``amber_align.choices``). It reads the source's ``modules.json`` when the
  trainer is built, so a malformed one fails before training (and again on every resume), and writes the modules
  into each folder the trainer saves to. For the final model that folder is the staging folder
  ``.incomplete-model`` (``amber_align.pipeline.save_model_atomically``): the modules are published together with
  the weights, before ``config.json``, never after it.

Only JSON is written: sentence-transformers itself is needed to load the result, not to write it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amber_align.choices import SENTENCE_TRANSFORMERS_MODES, ST_POOLING_MODES
from amber_align.errors import ConfigError, DataFormatError
from amber_align.io_utils import atomic_write_text
from amber_align.logging_utils import get_logger

__all__ = ["copy_sentence_transformers_modules", "write_sentence_transformers_config",
           "find_sentence_transformers_source", "read_modules", "plan_run_modules", "ModulesPlan",
           "SentenceTransformersModules",
           "MODULES_FILE", "XSR_MAX_SEQ_LENGTH"]

logger = get_logger(__name__)

#: the file that makes a folder a sentence-transformers model
MODULES_FILE = "modules.json"
#: root files of a sentence-transformers folder that belong to the pipeline, not to the encoder
_ROOT_FILES = ("config_sentence_transformers.json", "sentence_bert_config.json")
#: the encoder module's own settings (max_seq_length, ...), at the root or in the encoder's subfolder
_ENCODER_CONFIG = "sentence_bert_config.json"
#: ``encode_sentences``' default ``max_length``: the inputs of the XSR evaluation are cut there
XSR_MAX_SEQ_LENGTH = 128


def _is_encoder(module: dict[str, Any]) -> bool:
    """Whether a ``modules.json`` entry is the Transformer module (old and new spellings of its class)."""
    return module["type"].rsplit(".", 1)[-1] == "Transformer"


@dataclass(frozen=True)
class ModulesPlan:
    """What :func:`read_modules` found in a source folder: the ``modules.json`` entries to write (the encoder's
    path set to the root) and ``(source, name in the output)`` of every file and folder to copy."""

    source: Path
    modules: list[dict[str, Any]]
    copies: list[tuple[Path, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def read_modules(source_dir: str | Path) -> ModulesPlan:
    """Read and check ``source_dir/modules.json``; ``DataFormatError`` naming the file when it is not a list of
    ``{"type": str, "path": str, ...}`` entries with relative paths inside the folder, or names no Transformer module
    (the aligned encoder would then not be part of the pipeline)."""
    source = Path(source_dir)
    path = source / MODULES_FILE
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror or err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        line = getattr(err, "lineno", None)
        raise DataFormatError(f"not valid JSON ({err}); expected the list of sentence-transformers modules",
                              path=path, line=line) from None
    if not isinstance(modules, list) or not modules:
        raise DataFormatError(f"expected a non-empty JSON list of modules, got {type(modules).__name__}", path=path)
    for number, module in enumerate(modules):
        if not isinstance(module, dict) or not isinstance(module.get("type"), str) \
                or not isinstance(module.get("path"), str):
            raise DataFormatError(f"module {number}: expected an object with string 'type' and 'path', got "
                                  f"{module!r}", path=path)
        parts = Path(module["path"]).parts
        if Path(module["path"]).is_absolute() or ".." in parts:
            raise DataFormatError(f"module {number}: path {module['path']!r} leaves the model folder", path=path)
    encoders = [m for m in modules if _is_encoder(m)]
    if len(encoders) != 1:
        raise DataFormatError(f"expected one Transformer module (the encoder that is aligned), found "
                              f"{len(encoders)}: {[m['type'] for m in modules]}", path=path)
    written: list[dict[str, Any]] = []
    copies: list[tuple[Path, str]] = []
    missing: list[str] = []
    for module in modules:
        entry = dict(module)
        if _is_encoder(module):
            config_dir = source / module["path"]
            entry["path"] = ""  # the aligned weights are at the root of the output
            if (config_dir / _ENCODER_CONFIG).is_file():
                copies.append((config_dir / _ENCODER_CONFIG, _ENCODER_CONFIG))
        elif module["path"]:
            folder = source / module["path"]
            if folder.is_dir():
                copies.append((folder, module["path"]))
            else:
                missing.append(module["path"])  # e.g. 2_Normalize, which has no files of its own
        written.append(entry)
    names = {name for _, name in copies}
    copies += [(source / name, name) for name in _ROOT_FILES if name not in names and (source / name).is_file()]
    return ModulesPlan(source=source, modules=written, copies=copies, missing=missing)


def copy_sentence_transformers_modules(source_model_dir: str | Path, output_dir: str | Path) -> list[str]:
    """Copy the sentence-transformers modules of ``source_model_dir`` into ``output_dir`` (a saved encoder); return
    the names written. ``modules.json`` is written last, so an interrupted copy leaves a folder that loads as a
    default pipeline, not a half-copied one. Folders already in ``output_dir`` are replaced."""
    return _write_plan(read_modules(source_model_dir), Path(output_dir))


def _write_plan(plan: ModulesPlan, output_dir: Path) -> list[str]:
    output_dir.mkdir(parents=True, exist_ok=True)
    if output_dir.resolve() == plan.source.resolve():
        return []  # saved over its own source: the modules are there
    written = []
    for source, name in plan.copies:
        destination = output_dir / name
        if source.is_dir():
            shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(source, destination)
        else:
            shutil.copyfile(source, destination)
        written.append(name)
    atomic_write_text(output_dir / MODULES_FILE, json.dumps(plan.modules, indent=2) + "\n")
    return [*written, MODULES_FILE]


def write_sentence_transformers_config(output_dir: str | Path, pooling: str = "mean", *,
                                       max_seq_length: int | None = XSR_MAX_SEQ_LENGTH,
                                       normalize: bool = False) -> list[str]:
    """Make the saved encoder in ``output_dir`` load in ``SentenceTransformer`` as Transformer + Pooling (+
    Normalize with ``normalize=True``, as E5's own folder has); return the names written (``modules.json`` last).

    ``pooling="mean"`` with the default ``max_seq_length`` gives the vectors of the XSR evaluation
    (``encode_sentences`` with ``layer=-1``): the mean over every non-pad token, [CLS]/[SEP] included, of the last
    layer, inputs cut at 128 tokens (or fewer when the model has fewer positions). ``"cls"`` and ``"max"`` are
    sentence-transformers' other poolings. The folder must hold the model's ``config.json`` (its hidden size is the
    embedding width). An earlier pipeline's module folders are left in place but no longer named.
    """
    from amber_align.modeling import load_model_config, max_sequence_length

    if pooling not in ST_POOLING_MODES:
        raise ConfigError(f"pooling: expected one of {ST_POOLING_MODES}, got {pooling!r}")
    if max_seq_length is not None and (isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int)
                                       or max_seq_length < 2):
        raise ConfigError(f"max_seq_length: expected an integer >= 2 or None, got {max_seq_length!r}")
    output_dir = Path(output_dir)
    if not (output_dir / "config.json").is_file():
        raise DataFormatError("not a model folder: config.json is missing (save the model first)", path=output_dir)
    config = load_model_config(output_dir)
    hidden = getattr(config, "hidden_size", None)
    if not isinstance(hidden, int):
        raise DataFormatError(f"config.json has no hidden_size ({type(config).__name__})", path=output_dir)
    encoder: dict[str, Any] = {"do_lower_case": False}
    if max_seq_length is not None:
        positions = max_sequence_length(config) if getattr(config, "max_position_embeddings", None) else None
        encoder["max_seq_length"] = min(max_seq_length, positions) if positions else max_seq_length
    pooling_config = {"word_embedding_dimension": hidden, "pooling_mode_cls_token": pooling == "cls",
                      "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": pooling == "max",
                      "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True}
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    atomic_write_text(output_dir / _ENCODER_CONFIG, json.dumps(encoder, indent=2) + "\n")
    atomic_write_text(output_dir / "1_Pooling" / "config.json", json.dumps(pooling_config, indent=2) + "\n")
    atomic_write_text(output_dir / "config_sentence_transformers.json",
                      json.dumps({"prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"},
                                 indent=2) + "\n")
    written = [_ENCODER_CONFIG, "1_Pooling", "config_sentence_transformers.json"]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (output_dir / "2_Normalize").mkdir(exist_ok=True)
        written.append("2_Normalize")
    atomic_write_text(output_dir / MODULES_FILE, json.dumps(modules, indent=2) + "\n")
    return [*written, MODULES_FILE]


def find_sentence_transformers_source(name_or_path: str | None) -> Path | None:
    """The local folder with the ``modules.json`` of ``name_or_path``: the folder itself, or the cached snapshot of
    a Hub id (never a download: this runs offline too); None when there is none."""
    if not name_or_path:
        return None
    path = Path(name_or_path)
    if path.is_dir():
        return path if (path / MODULES_FILE).is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name_or_path, MODULES_FILE)
    except (ValueError, OSError):  # not a repo id (HFValidationError is a ValueError), unreadable cache
        return None
    if isinstance(cached, str):
        return Path(cached).parent
    logger.info(f"{name_or_path}: no modules.json in the local Hub cache, so no sentence-transformers modules are "
                "copied (download the model once with sentence-transformers to have them)")
    return None


@dataclass(frozen=True)
class _RunModules:
    """What a run writes at each save: the source's modules (``plan``) or the mean-pooling config."""

    plan: ModulesPlan | None


def plan_run_modules(args: Any, model: Any = None) -> _RunModules | None:
    """What ``args.sentence_transformers_modules`` asks this run to write at each save (None: nothing), checked
    now. ``auto``: the source's modules when ``model_name_or_path`` has a ``modules.json``; ``always``: those, else
    the mean-pooling config; ``never``: nothing."""
    mode = getattr(args, "sentence_transformers_modules", "auto")
    if mode not in SENTENCE_TRANSFORMERS_MODES:
        raise ConfigError(f"{type(args).__name__}.sentence_transformers_modules: expected one of "
                          f"{SENTENCE_TRANSFORMERS_MODES}, got {mode!r}")
    if mode == "never":
        return None
    source = find_sentence_transformers_source(getattr(args, "model_name_or_path", None))
    run = None
    if source is not None:
        plan = read_modules(source)
        if plan.missing:
            logger.info(f"{source}: module folder(s) {', '.join(plan.missing)} not there (none is needed for "
                        "Normalize); the others are copied")
        kinds = ", ".join(m["type"].rsplit(".", 1)[-1] for m in plan.modules)
        logger.info(f"the sentence-transformers modules of {source} ({kinds}) are saved with the model")
        run = _RunModules(plan=plan)
    elif mode == "always":
        logger.info("a mean-pooling sentence-transformers config is saved with the model (the XSR evaluation's "
                    "vectors; sentence_transformers_modules: always)")
        run = _RunModules(plan=None)
    layer = getattr(args, "layer", -1)
    layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if run is not None and layer not in (-1, layers):
        logger.warning(f"layer {layer} is aligned, but SentenceTransformer(output) pools the last layer "
                       f"({layers}); evaluate with --layer -1 to score the vectors it gives")
    return run


class SentenceTransformersModules:
    """Mixin for the alignment trainers (before ``transformers.Trainer`` in the bases): the sentence-transformers
    modules that ``sentence_transformers_modules`` asks for are written into every folder the trainer saves."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._st_modules = plan_run_modules(self.args, self.model)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict=state_dict)
        run = getattr(self, "_st_modules", None)
        if run is None:
            return
        folder = Path(output_dir or self.args.output_dir)
        if run.plan is not None:
            _write_plan(run.plan, folder)
        else:
            write_sentence_transformers_config(folder)
