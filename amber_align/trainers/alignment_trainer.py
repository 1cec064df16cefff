"""``AlignmentTrainer``: what every alignment trainer shares on top of ``transformers.Trainer``.

- Loss parts: ``compute_loss_parts`` returns a dict of named, weighted tensors, one or more per objective the config
  turns on (``args.objectives()``, from the registry ``amber_align.objectives``); they are summed and
  backpropagated once, and each part is logged in ``log()`` as its mean over the logging window and over processes
  (the same way the Trainer reports ``loss``).
- Normalisation (docs/methods.md "Normalisation"): each part is a mean over its items counted globally. The counts
  named by the objectives (``count_keys``) are summed over the gradient-accumulation window and gathered over
  processes in
  ``_get_num_items_in_batch``; parts divide by them and the loss is multiplied by the number of processes (DDP
  averages gradients), so GA and DDP give the gradient of one big batch.
- Data order: one batch from every language pair per step (``MultiPairBatchSampler``), resumable.
- A frozen teacher, when a method needs one, is loaded separately, frozen, prepared with
  ``accelerator.prepare_model(..., evaluation_mode=True)`` and never saved: it is not a submodule of the model.
  With ``peft`` (LoRA) the model is wrapped by ``peft.get_peft_model`` and the teacher is the model with its
  adapters disabled (``amber_align.peft_support``); checkpoints hold adapters, the final model is merged.
- sentence-transformers: every save also writes the modules ``sentence_transformers_modules`` asks for
  (``amber_align.hub.sentence_transformers``: the source's pooling / Normalize, or a mean-pooling config).
- Eval: ``prediction_step`` returns the summed loss; ``evaluate`` also reports ``eval_<part>`` for every part.
- Inputs, as TRL's trainers take them (:meth:`AlignmentTrainer.resolve_inputs`): ``model`` may be a module, a Hub id
  / folder, or None (``args.model_name_or_path``); the tokenizer defaults to the model's; ``train_dataset`` may be
  a raw parallel ``datasets.Dataset`` (prepared here by ``amber_align.data.prepare.prepare_parallel_data``), the
  encoded pairs of ``build_alignment_datasets`` (used as they are), or None (``args.train_data`` is read).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import Trainer

from amber_align.errors import ConfigError
from amber_align.families import model_family
from amber_align.hub.mixin import ModelCardMixin
from amber_align.hub.sentence_transformers import SentenceTransformersModules
from amber_align.logging_utils import get_logger
from amber_align.modeling import freeze_pooler, load_encoder, load_tokenizer, max_sequence_length
from amber_align.objectives import ObjectiveStep
from amber_align.peft_support import AdapterDisabledTeacher, apply_peft, is_peft_model, save_merged, \
    trainable_parameters
from amber_align.trainers.common import SharedTrainerMixin, prepare_frozen_teacher
from amber_align.trainers.fsdp_support import configure_fsdp, fsdp_version, prepare_fsdp_forward, \
    prepare_fsdp_teacher
from amber_align.trainers.sampler import MultiPairBatchSampler

__all__ = ["AlignmentTrainer"]

logger = get_logger(__name__)


class AlignmentTrainer(ModelCardMixin, SentenceTransformersModules, SharedTrainerMixin, Trainer):
    """Base class: trains the objectives of ``args.objectives()``; subclasses choose the model, collator and data.

    A subclass with a loss outside the registry overrides ``compute_loss_parts`` and sets ``count_keys``."""

    #: batch keys holding item counts that parts are normalised by (summed over GA window and processes); by default
    #: those of the config's objectives
    count_keys: tuple[str, ...] = ()
    #: parts divide by global counts themselves: the Trainer must not divide by GA steps again
    loss_is_scaled_for_ga = True

    def __init__(self, *args: Any, teacher: torch.nn.Module | None = None, **kwargs: Any):
        settings = getattr(kwargs.get("args"), "peft", None)
        if settings and kwargs.get("model") is not None and not is_peft_model(kwargs["model"]):
            kwargs["model"] = apply_peft(kwargs["model"], settings)  # LoRA (amber_align.peft_support)
        # the original model's config, before the Trainer aligns its special ids with the tokenizer's: a LoRA
        # run's teacher is the original model, config included (the teacher cache's fingerprint hashes it)
        model = kwargs.get("model")
        self._original_config = copy.deepcopy(model.config) if is_peft_model(model) else None
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        configure_fsdp(self)  # shard units and the tied MLM bias, before accelerate shards (fsdp_support)
        if is_peft_model(self.model):
            trainable, total = trainable_parameters(self.model)
            logger.info(f"PEFT: {trainable:,} of {total:,} parameters trainable ({100 * trainable / total:.2f} %): "
                        f"{type(self.model.peft_config['default']).__name__} on "
                        f"{sorted(self.model.peft_config['default'].target_modules)}")
        frozen = freeze_pooler(self.model)
        if frozen:
            logger.info(f"pooler frozen ({frozen} parameters): unused by alignment, kept in the checkpoint")
        if getattr(self.args, "freeze_word_embeddings", False):
            embeddings = self.model.get_input_embeddings().weight
            embeddings.requires_grad_(False)
            logger.info(f"word embeddings frozen ({embeddings.numel()} parameters; freeze_word_embeddings)")
        self._eval_parts: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.alignment_objectives = list(self.args.objectives()) if hasattr(self.args, "objectives") else []
        self.objective_losses = {o.name: o.build(self.args) for o in self.alignment_objectives}
        if self.alignment_objectives and not type(self).count_keys:
            self.count_keys = tuple(dict.fromkeys(k for o in self.alignment_objectives for k in o.count_keys))
        self._masked_lm = any(o.masked_lm for o in self.alignment_objectives)
        self._want_states = self._masked_lm or any(layer != -1 for o in self.alignment_objectives
                                                   for layer in o.sentence_layers(self.args))
        self.model_family = model_family(self.model)
        for objective in self.alignment_objectives:  # a family that lacks what an objective needs: one clear error
            if objective.attention_probabilities:
                self.model_family.check_attention_probabilities(f"{objective.weight_field} > 0")
            if objective.masked_lm:
                self.model_family.check_masked_lm(f"{objective.weight_field} > 0")
        self.teacher = self._prepare_teacher(teacher) if self.needs_teacher() else None

    # ----- model -----------------------------------------------------------------------------------------------
    @classmethod
    def load_model(cls, args: Any) -> torch.nn.Module:
        """The model this method trains, loaded from ``args.model_name_or_path`` (a plain encoder by default)."""
        return load_encoder(args.model_name_or_path, allow_pickle_weights=getattr(args, "allow_pickle_weights", False))

    @classmethod
    def resolve_inputs(cls, model: Any, args: Any, processing_class: Any, train_dataset: Any, eval_dataset: Any,
                       *, need_tokenizer: bool = True) -> tuple[Any, Any, Any, Any]:
        """``(model, tokenizer, train_dataset, eval_dataset)`` ready for the trainer, from what the user passed.

        - ``args`` missing: ``ConfigError``. ``model`` a string: that Hub id / folder (and ``args.model_name_or_path``
          when unset, so the frozen teacher is the same model); None: ``cls.load_model(args)``.
        - ``processing_class`` None: the tokenizer of ``args.tokenizer_name_or_path`` or of the model (when
          ``need_tokenizer``, i.e. no data collator was given, or data must be prepared); checked against the
          model's embeddings when either was loaded here.
        - ``train_dataset`` None: ``args.train_data`` through ``build_alignment_datasets`` (its held-out half
          becomes ``eval_dataset`` when none is given); a raw parallel ``datasets.Dataset``: prepared with
          ``args``' data settings; already encoded (or a stream): used as it is. The same for ``eval_dataset``.
        """
        from amber_align.data.prepare import build_alignment_datasets, is_encoded, prepare_parallel_data
        from amber_align.tokenization import check_tokenizer_matches_model

        if args is None:
            raise ConfigError(f"{cls.__name__} needs args= (its method config, e.g. CaoConfig(output_dir=...))")
        loaded = False
        if isinstance(model, str):
            if args.model_name_or_path is None:
                args.model_name_or_path = model
            elif args.model_name_or_path != model:
                raise ConfigError(f"{cls.__name__}: model={model!r} but args.model_name_or_path="
                                  f"{args.model_name_or_path!r}; give the model once")
            model = None
        if model is None:
            if args.model_name_or_path is None:
                raise ConfigError(f"{cls.__name__}: no model given: pass model= (a module, a Hub id or a folder) "
                                  "or set model_name_or_path in the config")
            model, loaded = cls.load_model(args), True
        tokenizer = processing_class
        name = args.tokenizer_name_or_path or args.model_name_or_path
        raw = [d for d in (train_dataset, eval_dataset) if d is not None and not isinstance(d, dict)
               and not is_encoded(d)]
        if tokenizer is None and (need_tokenizer or raw or (train_dataset is None and args.train_data)):
            if name is None:
                raise ConfigError(f"{cls.__name__}: no tokenizer: pass processing_class= or set "
                                  "tokenizer_name_or_path / model_name_or_path in the config")
            tokenizer, loaded = load_tokenizer(name), True
        if loaded:
            check_tokenizer_matches_model(tokenizer, model, name=name)
        cls.check_max_length(args, model)
        if train_dataset is None and args.train_data:
            train_dataset, held_out = build_alignment_datasets(args, tokenizer)
            eval_dataset = held_out if eval_dataset is None else eval_dataset
        elif train_dataset is not None and not is_encoded(train_dataset):
            train_dataset = prepare_parallel_data(train_dataset, args, tokenizer, what="train_dataset")
        if eval_dataset is not None and not isinstance(eval_dataset, dict) and not is_encoded(eval_dataset):
            eval_dataset = prepare_parallel_data(eval_dataset, args, tokenizer, what="eval_dataset")
        return model, tokenizer, train_dataset, eval_dataset

    @staticmethod
    def check_max_length(args: Any, model: Any) -> None:
        """``max_length`` must fit the model's position embeddings: a longer pair would fail at whichever step
        first samples it (a tensor size mismatch), so it is refused before training."""
        config = getattr(model, "config", None)
        if config is None or not hasattr(config, "max_position_embeddings"):
            return
        limit = max_sequence_length(config)
        if args.max_length > limit:
            raise ConfigError(
                f"max_length: {args.max_length} is longer than model {args.model_name_or_path or type(model).__name__} "
                f"accepts ({limit} positions, config.max_position_embeddings={config.max_position_embeddings}); "
                f"expected max_length <= {limit}")

    # ----- teacher -------------------------------------------------------------------------------------------
    def needs_teacher(self) -> bool:
        """Whether an objective of this run uses the frozen original model."""
        return any(o.needs_teacher for o in self.alignment_objectives)

    def _prepare_teacher(self, teacher: torch.nn.Module | None) -> Any:
        if teacher is None and is_peft_model(self.model):
            # the base weights never change under LoRA: the teacher is the model with its adapters off, no copy
            return AdapterDisabledTeacher(self.model, config=self._original_config)
        if teacher is None:
            path = getattr(self.args, "model_name_or_path", None)
            if path is None:
                raise ConfigError("a frozen teacher is needed: pass teacher= or set model_name_or_path in the config")
            # the RNG the Trainer seeded stays untouched: a load initialises missing weights (the pooler) on the
            # processes that load for real, and under FSDP's cpu_ram_efficient_loading the others load on meta,
            # which would leave each process's masking draws different from DDP's (issue 25)
            with torch.random.fork_rng(devices=[]):
                teacher = load_encoder(path, allow_pickle_weights=getattr(self.args, "allow_pickle_weights", False))
        if self.args.bf16 and getattr(self.args, "teacher_bf16", False):
            teacher = teacher.to(torch.bfloat16)  # it only runs forward under no_grad: bf16 weights suffice
        teacher = prepare_fsdp_teacher(self.accelerator, teacher)  # FSDP: on the device, process 0's weights
        return prepare_frozen_teacher(self.accelerator, teacher, self.model)

    # ----- saving ----------------------------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """A LoRA run's checkpoints keep its adapters (the Trainer resumes them); every other save (the final model,
        ``trainer.save_model()``) is merged into the base model's class unless ``peft.save`` is ``adapters``
        (``both``: the adapters stay beside the merged weights). ``amber_align.peft_support``."""
        super()._save(output_dir, state_dict=state_dict)
        settings = getattr(self.args, "peft", None)
        if not settings or not is_peft_model(self.model) or self._staging_root is not None:
            return
        if settings["save"] == "adapters" or not self.args.should_save:
            return
        folder = output_dir if output_dir is not None else self.args.output_dir
        save_merged(self.accelerator.unwrap_model(self.model), folder, keep_adapters=settings["save"] == "both")

    # ----- counts ----------------------------------------------------------------------------------------------
    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> dict[str, torch.Tensor] | None:
        keys = [k for k in self.count_keys if batch_samples and k in batch_samples[0]]
        if not keys:
            return None
        local = torch.stack(
            [torch.as_tensor(float(sum(int(b[k]) for b in batch_samples)), device=device) for k in keys]
        )
        total = self.accelerator.gather(local.unsqueeze(0)).sum(0) if self.accelerator.num_processes > 1 else local
        return dict(zip(keys, total))

    # ----- loss ------------------------------------------------------------------------------------------------
    def compute_loss_parts(
        self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], counts: dict[str, torch.Tensor] | None
    ) -> dict[str, torch.Tensor]:
        """Named, weighted loss parts of every objective, in order; each is a sum over items divided by ``counts``
        (or by local counts outside training). Forwards that objectives share run once (``ObjectiveStep``)."""
        if fsdp_version(self.accelerator) is not None:  # hidden states/attentions recorded, WA's last layer kept
            prepare_fsdp_forward(model, attention_probabilities=any(o.attention_probabilities
                                                                    for o in self.alignment_objectives))
        step = ObjectiveStep(self, model, inputs, counts, masked_lm=self._masked_lm, want_states=self._want_states)
        parts: dict[str, torch.Tensor] = {}
        for objective in self.alignment_objectives:
            parts.update(objective.compute(step, self.objective_losses[objective.name]))
        return parts

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        parts = self.compute_loss_parts(model, inputs, num_items_in_batch)
        # with global counts each process holds (its items)/(all items); DDP averages gradients over processes
        scale = self.accelerator.num_processes if num_items_in_batch is not None else 1
        loss = sum(parts.values()) * scale
        if model.training:
            self.record_parts(parts, scale)
        return (loss, parts) if return_outputs else loss

    # ----- data ------------------------------------------------------------------------------------------------
    def _length_of_rows(self, dataset: Any) -> list[int] | None:
        if "x_input_ids" in dataset.column_names and "y_input_ids" in dataset.column_names:
            return [len(a) + len(b) for a, b in zip(dataset["x_input_ids"], dataset["y_input_ids"])]
        return None

    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ConfigError(f"{type(self).__name__}.train(): no train_dataset: pass train_dataset= or set "
                              "train_data in the config")
        ds = self.train_dataset
        if hasattr(ds, "num_pairs"):  # amber_align.data.streaming.PairStreams: round-robin over the pairs
            return self._streaming_dataloader(ds)
        pairs = ds["pair"] if "pair" in ds.column_names else ["all"] * len(ds)
        group = self.args.train_sampling_strategy == "group_by_length"
        sampler = MultiPairBatchSampler(
            pairs,
            self.args.per_device_train_batch_size,
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
            lengths=self._length_of_rows(ds) if group else None,
            group_by_length=group,
            drop_last=self.args.dataloader_drop_last,
        )
        loader = DataLoader(
            ds,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available(),
            persistent_workers=self.args.dataloader_persistent_workers and self.args.dataloader_num_workers > 0,
        )
        return self.accelerator.prepare(loader)

    def _streaming_dataloader(self, streams: Any) -> DataLoader:
        """Batches of ``per_device_train_batch_size`` × the number of pairs consecutive round-robin examples (so
        every batch holds each pair equally); accelerate deals whole batches to processes (``dispatch_batches``
        is off with streaming). On resume the Trainer skips the batches already trained (``ignore_data_skip``)."""
        loader = DataLoader(
            streams,
            batch_size=self.args.per_device_train_batch_size * streams.num_pairs,
            collate_fn=self.data_collator,
            num_workers=0,  # one reader per stream: workers would each read every stream
            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available(),
        )
        return self.accelerator.prepare(loader)

    # ----- evaluation ------------------------------------------------------------------------------------------
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            parts = self.compute_loss_parts(model, inputs, None)
        for name, value in parts.items():
            self._eval_parts[name].append(value.detach())
        loss = sum(parts.values()).detach()
        return loss, None, None

    def evaluation_loop(self, *args: Any, **kwargs: Any):
        self._eval_parts.clear()
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        for name, values in sorted(self._eval_parts.items()):
            mean = torch.stack(values).mean()
            if self.accelerator.num_processes > 1:
                mean = self.accelerator.gather(mean.unsqueeze(0)).mean()
            output.metrics[f"{prefix}_{name}"] = round(mean.item(), 6)
        self._eval_parts.clear()
        return output
