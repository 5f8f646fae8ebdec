"""Problems: the shipped benchmarks, any JSONL file, and (see :mod:`thor.data.synthetic`) generated ones.

Example:
    >>> from thor.data import load_problems
    >>> probs = load_problems("aime24", limit=2)
    >>> len(probs), probs[0].source
    (2, 'aime24')
"""

from __future__ import annotations

from thor.data.loaders import (
    BENCHMARKS,
    DATASETS,
    DatasetConfig,
    load_jsonl_problems,
    load_problems,
)

__all__ = ["BENCHMARKS", "DATASETS", "DatasetConfig", "load_jsonl_problems", "load_problems"]
