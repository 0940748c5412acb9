"""The gate's learned judge: gradient-boosted trees over a candidate's features, in numpy.

A hand rule keys on one feature at a time, with a threshold that one sound model's spectra
chose; on sound from another model the rules misjudge (``benchmarks/detection.md``). A
classifier weighs every feature together, and trained on members of one family of sound
models (``family.py``, ``dev``) it judged members of the other (``heldout``) better than the
rules did, so the gate follows it (``GateConfig.min_score``) and the rules name the reason.

The model is scikit-learn's ``HistGradientBoostingClassifier``, trained by ``make
gate-model`` (``benchmarks/train_gate.py``) and stored as plain arrays
(``gate_model.npz``, versioned with the package): no pickle, no scikit-learn at run time, the
same scores on any machine. The shipped model is trained with the band features (the
octave edges and the per-octave rise) blanked, so that it cannot key on where one sound
model puts its pops' energy; the gate still computes them, and a model trained on them
can use them.

There are two judges, trained on the same candidates: one for sessions of several mics,
and one for a single mic, trained with the place features and the spine's movement
(:data:`ONE_MIC_BLIND`) blanked too. One mic cannot place a sound, and a judge that learned
from the place features moved its one-mic decisions with them (a real heart sound passed:
``benchmarks/detection.md``); the one-mic judge sees only what one mic can hear.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

MODEL_PATH = Path(__file__).with_name("gate_model.npz")
"""The judge of sessions with several mics; the one-mic judge is beside it
(:func:`one_mic_path`)."""

FEATURES = (
    "log_strength", "excess_db", "log_prominence", "contrast_db", "decay_db",
    "log_duration_ms", "rise_periods", "harmonicity", "snr_db", "spread_db", "log2_band_low_hz",
    "log2_band_high_hz", "shape_0", "shape_1", "shape_2", "shape_3", "shape_4", "shape_5",
    "shape_6", "alike", "periodic", "cluster", "faint", "impact", "mics",
    "loc_cost", "loc_attenuation", "loc_interior", "loc_margin", "bending",
)
"""What the model sees of a candidate (see :func:`backpop_sense.pops.artifacts.features`)."""
PLACE = tuple(f for f in FEATURES if f.startswith("loc_"))
"""Where along the spine the onset comes from (:func:`backpop_sense.pops.artifacts.place`):
NaN with one mic."""
ONE_MIC_BLIND = (*PLACE, "faint", "bending")
"""Blanked in training the one-mic judge: the place, which one mic cannot tell; the faint
onsets from the same place, which with one mic are every faint onset around (the floor's
own peaks among them); and the spine's movement, which the one-mic sessions it is made for
do not record (the phone held to the back: no IMUs). Trained with the movement, the one-mic
judge moved its decisions on sessions without it (``benchmarks/detection.md``)."""


def one_mic_path(path: str | Path) -> Path:
    """Where the one-mic judge is kept beside the judge of several mics at ``path``."""
    path = Path(path)
    return path.with_name(f"{path.stem}-one-mic{path.suffix}")


@dataclass(frozen=True)
class TreeModel:
    """Boosted binary trees, flattened: node ``k`` of every tree in one set of arrays.

    Attributes
    ----------
    feature, threshold, left, right, value, leaf, missing_left : ndarray
        Per node: the feature tested, go left when ``x <= threshold`` (or when ``x`` is
        missing and ``missing_left``), the children (absolute node indices), the leaf value
        and whether it is a leaf.
    roots : ndarray
        Each tree's first node.
    baseline : float
        The raw score before any tree (log-odds).
    features : tuple of str
        The feature names, in column order.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    leaf: np.ndarray
    missing_left: np.ndarray
    roots: np.ndarray
    baseline: float
    features: tuple[str, ...]

    def score(self, x: np.ndarray) -> np.ndarray:
        """Probability that each row of ``x`` (shape (n, features)) is a pop."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        if x.shape[1] != len(self.features):
            raise ValueError(f"{len(self.features)} features expected, got {x.shape[1]}")
        rows = np.arange(x.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (x.shape[0], len(self.roots))).copy()
        while True:
            inner = ~self.leaf[node]
            if not inner.any():
                break
            v = x[rows, self.feature[node]]
            go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        raw = self.baseline + self.value[node].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-raw))

    def save(self, path: str | Path) -> None:
        """Write the arrays (``.npz``)."""
        np.savez_compressed(path, feature=self.feature, threshold=self.threshold,
                            left=self.left, right=self.right, value=self.value, leaf=self.leaf,
                            missing_left=self.missing_left, roots=self.roots,
                            baseline=np.array(self.baseline),
                            features=np.array(self.features))

    @classmethod
    def load(cls, path: str | Path) -> TreeModel:
        """Read a model written by :meth:`save`."""
        with np.load(path) as f:
            return cls(f["feature"], f["threshold"], f["left"], f["right"], f["value"],
                       f["leaf"], f["missing_left"], f["roots"], float(f["baseline"]),
                       tuple(str(n) for n in f["features"]))

    @classmethod
    def from_sklearn(cls, model: object, features: tuple[str, ...]) -> TreeModel:
        """Flatten a fitted binary ``HistGradientBoostingClassifier``."""
        parts, roots, offset = [], [], 0
        for (predictor,) in model._predictors:  # type: ignore[attr-defined]
            nodes = predictor.nodes
            roots.append(offset)
            parts.append((nodes, offset))
            offset += len(nodes)
        def cat(field: str) -> np.ndarray:
            return np.concatenate([n[field] for n, _ in parts])
        left = np.concatenate([np.where(n["is_leaf"], 0, n["left"]) + o for n, o in parts])
        right = np.concatenate([np.where(n["is_leaf"], 0, n["right"]) + o for n, o in parts])
        return cls(cat("feature_idx").astype(np.int64), cat("num_threshold").astype(float),
                   left.astype(np.int64), right.astype(np.int64), cat("value").astype(float),
                   cat("is_leaf").astype(bool), cat("missing_go_to_left").astype(bool),
                   np.array(roots, dtype=np.int64),
                   float(np.ravel(model._baseline_prediction)[0]),  # type: ignore[attr-defined]
                   tuple(features))


def default_model(one_mic: bool = False) -> TreeModel:
    """The judge shipped with the package for sessions of several mics (``gate_model.npz``),
    or for one mic; read once.

    Raises
    ------
    RuntimeError
        When it was trained on other features than the gate computes (rebuild it).
    """
    return _shipped(one_mic_path(MODEL_PATH) if one_mic else MODEL_PATH)


@cache
def _shipped(path: Path) -> TreeModel:
    model = TreeModel.load(path)
    if model.features != FEATURES:
        raise RuntimeError(f"{path} was trained on other features than the gate's; "
                           "rebuild it with `make gate-model`")
    return model
