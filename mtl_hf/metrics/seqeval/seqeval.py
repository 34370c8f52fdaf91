"""Seqeval metric: entity-level precision / recall / F1 and token accuracy over tag-string sequences.

A self-contained `evaluate` module: it imports only libraries, so `evaluate.load(<this file or its folder>)` works
offline, and `Seqeval()` can be instantiated directly. By default it matches `seqeval.metrics` exactly (default mode,
i.e. conlleval-style chunking, micro average over entities).

It imports `evaluate` as a module on purpose: `evaluate.load` instantiates the first non-abstract
`EvaluationModule` subclass in this file's namespace, which after `from evaluate import Metric` would be `Metric`.
"""

from __future__ import annotations

import datasets
import evaluate
import seqeval.scheme
from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

_DESCRIPTION = """
Entity-level scores for sequence labelling (NER, chunking) computed with the `seqeval` package.

Tags are strings in IOB2 style (`B-PER`, `I-PER`, `O`, ...). Entities are extracted per sentence and a predicted
entity counts as correct only if its type and its whole span match a gold entity: a partially recovered span is
both a false positive and a false negative. `precision`, `recall` and `f1` are micro averages over entities, and
`accuracy` is the token-level accuracy. The defaults reproduce `seqeval.metrics.f1_score(y_true, y_pred)` etc.
(default mode, which like conlleval also accepts an entity starting with `I-`); pass `mode="strict"` and
`scheme="IOB2"` for strict scheme checking.
"""

_CITATION = """
@misc{seqeval,
  title={{seqeval}: A Python framework for sequence labeling evaluation},
  url={https://github.com/chakki-works/seqeval},
  note={Software available from https://github.com/chakki-works/seqeval},
  author={Hiroki Nakayama},
  year={2018},
}
@inproceedings{ramshaw-marcus-1995-text,
    title = "Text Chunking using Transformation-Based Learning",
    author = "Ramshaw, Lance  and Marcus, Mitch",
    booktitle = "Third Workshop on Very Large Corpora",
    year = "1995",
    url = "https://www.aclweb.org/anthology/W95-0107",
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[str]]`): predicted tags, one list per sentence.
    references (`list[list[str]]`): gold tags, one list per sentence (same lengths as `predictions`).
    mode (`str`, *optional*): `None` (seqeval's default, lenient) or `"strict"`.
    scheme (`str`, *optional*): a `seqeval.scheme` class name such as `"IOB2"`; used only with `mode="strict"`.
    zero_division (`int`, *optional*, defaults to 0): value of precision / recall when undefined (no predicted or no
        gold entities). seqeval's own default `"warn"` gives the same value 0 plus a warning.

Returns:
    precision (`float`): correct predicted entities / predicted entities.
    recall (`float`): correct predicted entities / gold entities.
    f1 (`float`): harmonic mean of precision and recall.
    accuracy (`float`): token-level accuracy.

Examples:
    >>> metric = evaluate.load("mtl_hf/metrics/seqeval")
    >>> metric.compute(predictions=[["B-PER", "O", "O", "B-LOC"]], references=[["B-PER", "I-PER", "O", "B-LOC"]])
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'accuracy': 0.75}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Seqeval(evaluate.Metric):
    """Entity-level precision / recall / F1 (micro) and token accuracy, via `seqeval`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            homepage="https://github.com/chakki-works/seqeval",
            codebase_urls=["https://github.com/chakki-works/seqeval"],
            reference_urls=["https://github.com/chakki-works/seqeval"],
        )

    def _compute(
        self,
        predictions: list[list[str]],
        references: list[list[str]],
        mode: str | None = None,
        scheme: str | None = None,
        zero_division: int = 0,
    ) -> dict[str, float]:
        if not predictions:
            raise ValueError("Seqeval metric: got no sentences.")
        kwargs = {"mode": mode, "scheme": _scheme_class(scheme), "zero_division": zero_division}
        return {
            "precision": float(precision_score(references, predictions, **kwargs)),
            "recall": float(recall_score(references, predictions, **kwargs)),
            "f1": float(f1_score(references, predictions, **kwargs)),
            "accuracy": float(accuracy_score(references, predictions)),
        }


def _scheme_class(scheme: str | None) -> type | None:
    """The `seqeval.scheme` class named `scheme` (e.g. `"IOB2"`), or None."""
    if scheme is None:
        return None
    valid = ("IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU")
    if scheme not in valid:
        raise ValueError(f"Unknown seqeval scheme {scheme!r}. Valid schemes are: {valid}.")
    return getattr(seqeval.scheme, scheme)
