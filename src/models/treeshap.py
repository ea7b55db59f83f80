"""Exact TreeSHAP for a LightGBM booster, computed once per distinct path pattern of each tree.

A row's SHAP values for one tree depend only on the direction it takes at every split of that tree. Two rows
that fall in the same threshold interval of every feature the tree splits on (the same category-set membership
for a categorical split, the same missing-value handling) therefore get identical values for that tree. So, per
tree, :class:`TreeShapExplainer` codes each row's pattern, finds the distinct patterns, asks LightGBM's own exact
TreeSHAP (``predict(pred_contrib=True)`` restricted to that one tree) for one representative row per pattern and
copies the result to every row of the pattern. Nothing is approximated: the values equal ``pred_contrib`` on the
whole booster up to floating-point summation order (about 1e-14).

How a value becomes a pattern, following LightGBM's own decision rules (``Tree::NumericalDecision`` and
``Tree::CategoricalDecision``):

- numerical split ``x <= threshold``: each feature's thresholds over the whole model cut the line into intervals;
  values that are "zero" to LightGBM (``|x| <= 1e-35``) form their own classes per interval (missing under
  ``missing_type`` Zero) and NaN has its own class (missing under NaN and Zero; read as 0.0 under None). A missing
  value goes the split's ``default_left`` way.
- categorical split (``x`` in a set of categories goes left): the value is truncated to an integer; NaN, negative
  values and categories in no split's set go right everywhere, so they share one class.

Per tree, the classes of a feature that take the same directions at all of that tree's splits on the feature are
merged, and the merged classes of the tree's features are combined into one integer code per row.

Supported: single-output gradient-boosted trees with numerical and categorical splits. Linear trees, several
trees per iteration (multiclass) and averaged output (random forest) raise :class:`UnsupportedBooster`; the
caller can fall back to ``pred_contrib``.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

# LightGBM's kZeroThreshold (a float constant): |x| <= this is "zero", i.e. missing under missing_type Zero.
ZERO_THRESHOLD = float(np.float32(1e-35))
# Above this many possible codes a tree's patterns are deduplicated by sorting rather than by a dense table.
_DENSE_CODE_LIMIT = 1 << 22
# Codes are combined in int64; re-number them before a product of radices could overflow.
_CODE_LIMIT = 1 << 62


class UnsupportedBooster(ValueError):
    """The booster holds something the pattern cache does not handle (the message says what)."""


@dataclass(frozen=True)
class _Split:
    """One internal node as the pattern code needs it."""

    feature: int
    categorical: bool
    threshold: float  # numerical splits
    categories: frozenset[int]  # categorical splits: the categories that go left
    default_left: bool
    missing_type: str  # "None", "Zero" or "NaN"


@dataclass(frozen=True)
class _FeatureClasses:
    """How one feature's values map to global classes (shared by every tree of the model)."""

    categorical: bool
    thresholds: np.ndarray  # numerical: sorted distinct thresholds of the model's splits on the feature
    n_categories: int  # categorical: the largest category in any split's set + 1

    @property
    def n_classes(self) -> int:
        if self.categorical:
            return self.n_categories + 1  # 0 .. n_categories - 1, then "in no set / NaN / negative"
        k = len(self.thresholds) + 1
        return 2 * k + 1  # k intervals, k intervals of zero-valued rows, NaN

    def classify(self, values: np.ndarray) -> np.ndarray:
        """The global class (int32) of each value of this feature."""
        if self.categorical:
            cats = np.trunc(values)
            inside = (cats >= 0) & (cats < self.n_categories)  # False for NaN
            return np.where(inside, np.nan_to_num(cats), self.n_categories).astype(np.int32)
        k = len(self.thresholds) + 1
        interval = np.searchsorted(self.thresholds, values, side="left").astype(np.int32)
        zero = np.abs(values) <= ZERO_THRESHOLD
        classes = interval + k * zero.astype(np.int32)
        classes[np.isnan(values)] = 2 * k
        return classes

    def goes_left(self, split: _Split) -> np.ndarray:
        """For each global class, whether its rows go left at ``split`` (a split on this feature)."""
        if self.categorical:
            left = np.zeros(self.n_classes, dtype=bool)
            left[[c for c in split.categories if c < self.n_categories]] = True
            return left
        k = len(self.thresholds) + 1
        position = int(np.searchsorted(self.thresholds, split.threshold))
        interval_left = np.arange(k) <= position  # every value of interval i is <= thresholds[i]
        zero_left = np.full(k, split.default_left) if split.missing_type == "Zero" else interval_left
        if split.missing_type == "None":  # NaN is read as 0.0
            nan_left = bool(np.searchsorted(self.thresholds, 0.0, side="left") <= position)
        else:
            nan_left = split.default_left
        return np.concatenate([interval_left, zero_left, [nan_left]])


@dataclass(frozen=True)
class _TreePlan:
    """A tree's pattern code: per split feature, a lookup from global class to the tree's local class."""

    index: int
    features: tuple[int, ...]
    lookups: tuple[np.ndarray, ...]
    radices: tuple[int, ...]


class TreeShapExplainer:
    """Exact TreeSHAP contributions of a LightGBM booster via a per-tree pattern cache.

    ``contributions(X)`` takes the booster's numeric input (a float matrix, categorical features as their integer
    codes, NaN for missing) and returns what ``booster.predict(X, pred_contrib=True)`` returns: one column per
    feature plus the expected value last, each row summing to the raw margin.
    """

    def __init__(self, booster: lgb.Booster):
        model = booster.dump_model()
        _check_supported(model)
        self.booster = booster
        self.n_features = int(model["max_feature_idx"]) + 1
        splits = [_tree_splits(tree["tree_structure"]) for tree in model["tree_info"]]
        self.classes = _feature_classes(splits)
        self.plans = [_plan_tree(i, tree, self.classes) for i, tree in enumerate(splits)]

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """SHAP values of every row of ``X`` (rows x features): an array of rows x (features + 1)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must be rows x {self.n_features} features, got shape {X.shape}")
        n = len(X)
        out = np.zeros((self.n_features + 1, n), dtype=np.float64)  # column-major: one contiguous row per feature
        if n == 0:
            return out.T
        global_classes = {f: c.classify(X[:, f]) for f, c in self.classes.items()}
        for plan in self.plans:
            self._add_tree(plan, X, global_classes, out)
        return out.T

    def _add_tree(self, plan: _TreePlan, X: np.ndarray, global_classes: dict, out: np.ndarray) -> None:
        """Add one tree's contributions to ``out`` (features + 1 x rows), one exact TreeSHAP per pattern."""
        codes, n_codes = _pattern_codes(plan, global_classes, len(X))
        representatives, inverse = _distinct_patterns(codes, n_codes)
        values = self.booster.predict(
            X[representatives], start_iteration=plan.index, num_iteration=1, pred_contrib=True
        )
        for column in (*plan.features, self.n_features):  # the tree's features and the bias; the rest are 0
            out[column] += values[:, column][inverse]


def _check_supported(model: dict) -> None:
    """Raise :class:`UnsupportedBooster` for what the pattern cache does not reproduce."""
    if int(model.get("num_tree_per_iteration", 1)) != 1:
        raise UnsupportedBooster(f"{model['num_tree_per_iteration']} trees per iteration (multiclass)")
    if model.get("average_output"):
        raise UnsupportedBooster("averaged output (random forest)")
    if not model["tree_info"]:
        raise UnsupportedBooster("the booster has no trees")
    for tree in model["tree_info"]:
        if _has_linear_leaf(tree["tree_structure"]):
            raise UnsupportedBooster("linear trees (leaf values depend on the features)")


def _has_linear_leaf(node: dict) -> bool:
    if "leaf_index" in node or "leaf_value" in node:
        return "leaf_coeff" in node
    return _has_linear_leaf(node["left_child"]) or _has_linear_leaf(node["right_child"])


def _tree_splits(root: dict) -> list[_Split]:
    """Every internal node of a dumped tree (order does not matter)."""
    splits: list[_Split] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        decision = node["decision_type"]
        if decision not in ("<=", "=="):
            raise UnsupportedBooster(f"decision type {decision!r}")
        categorical = decision == "=="
        splits.append(
            _Split(
                feature=int(node["split_feature"]),
                categorical=categorical,
                threshold=float("nan") if categorical else float(node["threshold"]),
                categories=frozenset(int(c) for c in str(node["threshold"]).split("||")) if categorical else frozenset(),
                default_left=bool(node["default_left"]),
                missing_type=str(node["missing_type"]),
            )
        )
        stack += [node["left_child"], node["right_child"]]
    return splits


def _feature_classes(trees: list[list[_Split]]) -> dict[int, _FeatureClasses]:
    """The global classes of every feature any tree splits on."""
    by_feature: dict[int, list[_Split]] = {}
    for tree in trees:
        for split in tree:
            by_feature.setdefault(split.feature, []).append(split)
    classes = {}
    for feature, splits in sorted(by_feature.items()):
        kinds = {s.categorical for s in splits}
        if len(kinds) > 1:
            raise UnsupportedBooster(f"feature {feature} has both numerical and categorical splits")
        if kinds == {True}:
            top = max((max(s.categories, default=-1) for s in splits), default=-1)
            classes[feature] = _FeatureClasses(True, np.empty(0), top + 1)
        else:
            thresholds = np.unique(np.array([s.threshold for s in splits], dtype=np.float64))
            classes[feature] = _FeatureClasses(False, thresholds, 0)
    return classes


def _plan_tree(index: int, splits: list[_Split], classes: dict[int, _FeatureClasses]) -> _TreePlan:
    """Per split feature of the tree: global class -> local class, merging classes with identical directions."""
    features = sorted({s.feature for s in splits})
    lookups, radices = [], []
    for feature in features:
        directions = np.stack([classes[feature].goes_left(s) for s in splits if s.feature == feature], axis=1)
        distinct, lookup = np.unique(directions, axis=0, return_inverse=True)
        lookups.append(lookup.reshape(-1).astype(np.int64))
        radices.append(len(distinct))
    return _TreePlan(index, tuple(features), tuple(lookups), tuple(radices))


def _pattern_codes(plan: _TreePlan, global_classes: dict, n_rows: int) -> tuple[np.ndarray, int]:
    """One int64 code per row naming its pattern in the tree, and the number of possible codes."""
    codes = np.zeros(n_rows, dtype=np.int64)
    n_codes = 1
    for feature, lookup, radix in zip(plan.features, plan.lookups, plan.radices, strict=True):
        if n_codes * radix >= _CODE_LIMIT:  # re-number the patterns seen so far before the code overflows
            _, codes = np.unique(codes, return_inverse=True)
            n_codes = int(codes.max()) + 1
        codes = codes * radix + lookup[global_classes[feature]]
        n_codes *= radix
    return codes, n_codes


def _distinct_patterns(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """One representative row per distinct code, and each row's position among the distinct codes."""
    if n_codes <= _DENSE_CODE_LIMIT:  # a table over every possible code: linear time, no sort
        row_of_code = np.full(n_codes, -1, dtype=np.int64)
        row_of_code[codes] = np.arange(len(codes))  # any row of a pattern represents it
        present = row_of_code >= 0
        position = np.cumsum(present) - 1
        return row_of_code[present], position[codes]
    _, representatives, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return representatives, inverse.reshape(-1)
