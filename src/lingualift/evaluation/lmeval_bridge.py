"""lm-evaluation-harness model type ``lingualift``: any lm-eval task, with adapters and ShifCon.

lm-eval 0.4.13 finds models only in its own registry (``MODEL_MAPPING`` plus
``@register_model``); it reads no plugin entry points. Importing this module
registers the model, so run lm-eval through it::

    python -m lingualift.evaluation.lmeval_bridge --model lingualift \
        --model_args pretrained=embedded:gemma-3-270m,peft=adapters/sw/v1,shifcon=runs/shifcon,lang=sw \
        --tasks global_mmlu_full_sw --batch_size 8 --output_path results/

or from Python: ``import lingualift.evaluation.lmeval_bridge`` before
``lm_eval.simple_evaluate(model="lingualift", ...)``.

Model arguments use lm-eval's own names, so its run naming and output folders
work as for ``--model hf`` (a run is named after ``peft=``, else ``pretrained=``):
``pretrained`` (model spec, default the embedded Gemma 3 270M), ``peft`` (PEFT
folders joined by ``+``), ``shifcon`` (a ShifCon folder), ``lang`` (language to
shift from; ``auto`` reads it from each task's name, e.g. ``global_mmlu_full_sw_*``
-> ``sw``), ``dtype`` and ``device`` (auto by default: a GPU with bf16/fp16 where there is
one, the CPU with float32 elsewhere), ``quantization`` (none, nf4, int8),
``attn_implementation``, ``trust_remote_code``, ``batch_size`` (a number, or
``auto``/``auto:N`` on a GPU: lm-eval's own search for the largest batch that fits, from
``max_batch_size`` down), ``max_length``. The earlier names ``base``
and ``adapter``/``adapters`` are still accepted. Everything else goes to lm-eval's
``HFLM``, which this class extends: tokenization, generation and chat templates are
lm-eval's own; log-likelihoods go through lingualift's batched scorer.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lm_eval.models  # noqa: F401  (fills the registry first: hf & co. stay available)
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from lingualift.errors import LingualiftError
from lingualift.evaluation.loading import load_for_eval
from lingualift.evaluation.results import adapter_sha
from lingualift.evaluation.scoring import LoglikelihoodScorer
from lingualift.languages import normalize_language
from lingualift.models import DEFAULT_MODEL
from lingualift.placement import ModelSettings

eval_logger = logging.getLogger(__name__)


@register_model("lingualift")
class LingualiftLM(HFLM):
    """An ``HFLM`` over a lingualift-loaded model (base + adapters), with ShifCon around calls."""

    def __init__(
        self,
        pretrained: str | None = None,
        peft: str | None = None,
        shifcon: str | None = None,
        lang: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
        batch_size: int | str | None = 8,
        max_length: int | None = None,
        base: str | None = None,
        adapter: str | None = None,
        adapters: str | None = None,
        **kwargs: Any,
    ) -> None:
        if pretrained and base and pretrained != base:
            raise LingualiftError("Give pretrained (or its old name base), not both.")
        given = [
            name
            for name, value in (("peft", peft), ("adapter", adapter), ("adapters", adapters))
            if value
        ]
        if len(given) > 1:
            raise LingualiftError(
                f"Give one of peft, adapter or adapters, not {' and '.join(given)}; join several "
                "adapters with '+'."
            )
        # dtype and device default to auto (lingualift's ModelSettings): cuda:0 with bf16/fp16
        # where a GPU is, cpu with float32 elsewhere; never CUDA on a CPU-only machine.
        settings = ModelSettings(
            model=pretrained or base or DEFAULT_MODEL,
            dtype=dtype or "auto",
            device=device or "auto",
            attn_implementation=kwargs.pop("attn_implementation", None) or "auto",
            quantization=kwargs.pop("quantization", None) or "none",
            trust_remote_code=str(kwargs.pop("trust_remote_code", False)).lower() == "true",
        )
        model, tokenizer, self.shifcon = load_for_eval(
            settings, peft or adapter or adapters, shifcon
        )
        if self.shifcon is not None and not lang:
            raise LingualiftError(
                "shifcon needs lang=<code> (the language the tasks are in) or lang=auto."
            )
        self.lang = lang if lang in (None, "auto") else normalize_language(lang)
        self._peft = peft or adapter or adapters
        super().__init__(
            pretrained=model,
            tokenizer=tokenizer,
            batch_size=_batch_size_arg(batch_size),
            max_length=max_length,
            **kwargs,
        )
        if self.batch_size == "auto" and self.device.type == "cpu":
            raise LingualiftError(
                "batch_size=auto finds the largest batch by running into out-of-memory errors, "
                "which only a GPU reports (on CPU the system kills the process instead); "
                "give a number, e.g. batch_size=8."
            )
        self._scorer = LoglikelihoodScorer(
            self.model,
            self.tokenizer,
            batch_size=self.batch_size if isinstance(self.batch_size, int) else 1,
            max_length=self.max_length,
        )
        self._current_lang: str | None = None

    # -- language routing -----------------------------------------------------
    def lang_of(self, request: Any) -> str | None:
        if self.shifcon is None:
            return None
        if self.lang != "auto":
            return self.lang
        name = getattr(request, "task_name", None) or ""
        known = set(self.shifcon.languages)
        for token in reversed(re.split(r"[_\-.]", name)):
            if 2 <= len(token) <= 3 and token.lower() in known:
                return token.lower()
        raise LingualiftError(
            f"Cannot tell the language of task {name!r}; pass lang=<code> in --model_args."
        )

    def _per_language(self, requests: Sequence[Any], run: Callable[[list[Any]], list[Any]]):
        """Run ``run`` once per language with ShifCon applied, results in request order."""
        if self.shifcon is None:
            return run(list(requests))
        groups: dict[str, list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            groups[self.lang_of(request)].append(i)
        out: list[Any] = [None] * len(requests)
        for lang, indices in groups.items():
            with self.shifcon.apply(self.model, lang):
                for i, result in zip(indices, run([requests[i] for i in indices]), strict=True):
                    out[i] = result
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self._per_language(
            requests, lambda r: super(LingualiftLM, self).loglikelihood(r, disable_tqdm)
        )

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self._per_language(
            requests, lambda r: super(LingualiftLM, self).loglikelihood_rolling(r, disable_tqdm)
        )

    def generate_until(self, requests, disable_tqdm: bool = False):
        return self._per_language(
            requests, lambda r: super(LingualiftLM, self).generate_until(r, disable_tqdm)
        )

    # -- scoring ----------------------------------------------------------------
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        if requests and self.batch_size == "auto":
            self._scorer.batch_size = self.scoring_batch_size(requests)
        pairs = [(list(ctx), list(cont)) for _, ctx, cont in requests]
        return self._scorer.loglikelihood_tokens(pairs, progress=not disable_tqdm)

    def scoring_batch_size(self, requests: Sequence[Any]) -> int:
        """``batch_size=auto``: lm-eval's own search (``HFLM._detect_batch_size``, largest first,
        halved on out-of-memory) at the longest request, so every batch of the scorer fits."""
        longest = max(range(len(requests)), key=lambda i: len(requests[i][1] + requests[i][2]))
        size = int(self._detect_batch_size(requests, longest))
        eval_logger.info("batch_size=auto: scoring in batches of %d", size)
        return size

    def get_model_info(self) -> dict[str, Any]:
        """lm-eval's model facts, with ``peft_sha`` the content hash of the adapters' weights."""
        info = super().get_model_info()
        if self._peft:
            info["peft_sha"] = adapter_sha(self._peft)
        return info


def _batch_size_arg(value: int | str | None) -> int | str:
    """``batch_size`` as HFLM takes it: a positive number, ``auto`` or ``auto:N``; else one sentence."""
    text = str(8 if value is None else value).strip().lower()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    head, _, schedule = text.partition(":")
    if head == "auto" and (not schedule or schedule.replace(".", "", 1).isdigit()):
        return text
    raise LingualiftError(
        f"batch_size={value!r} is neither a positive number nor auto (or auto:N); give one."
    )


def write_lmeval_task(data: str | Path, folder: str | Path, name: str) -> Path:
    """Write ``<folder>/<name>.yaml``: an lm-eval task over a local Global-MMLU-format JSONL file.

    The prompt is the zero-shot prompt of :func:`lingualift.evaluation.mcq.build_prompt`
    (four options, letter answers), so lm-eval and ``lingualift eval`` score the same
    strings; pass ``--include_path <folder> --tasks <name>`` to lm-eval. Files of
    ``lingualift cloze`` qualify.
    """
    import yaml

    from lingualift.atomic import atomic_write_text

    data = Path(data)
    if not data.is_file():
        raise LingualiftError(f"No question file at {data}; write one with lingualift cloze.")
    subject = "{{subject.replace('_', ' ')}}"
    task = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "description": f"The following are multiple choice questions (with answers) about {subject}.\n\n",
        "doc_to_text": "{{question.strip()}}\n"
        + "".join(f"{c}. {{{{option_{c.lower()}}}}}\n" for c in "ABCD")
        + "Answer:",
        "doc_to_choice": list("ABCD"),
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 0.0},
    }
    path = Path(folder) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(task, allow_unicode=True, sort_keys=False))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run lm-eval's own command line with the ``lingualift`` model registered."""
    from lm_eval.__main__ import cli_evaluate

    argv = list(sys.argv[1:] if argv is None else argv)
    old = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        cli_evaluate()
    except LingualiftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        sys.argv = old
    return 0


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
