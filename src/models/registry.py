"""The model registry: registered names, the ``challenger``/``champion`` aliases, and promotion by a gate.

A training job registers its model with :func:`register_model`; the new version gets the alias ``challenger``,
and the first version of a model also becomes ``champion`` at once, so a fresh pipeline (train -> register
-> score) can score before anyone runs a promotion. Later versions reach ``champion`` only through
:func:`promote`, which scores challenger and champion with one caller-supplied function (on the same
out-of-time data) and moves the alias only when the challenger passes the :class:`PromotionGate`.

Scoring code reads aliases, never run paths: :func:`load_model` (``models:/<name>@champion``) and
:func:`resolve_version` (which version an alias points at, to record the versions used).
All calls go to the registry set by :func:`bankseg.models.tracking.configure_tracking`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.pyfunc import PyFuncModel

PERSONAS_MODEL = "bankseg-personas"
CHURN_MODEL = "bankseg-churn"
CONVERSION_MODEL = "bankseg-conversion"
UPGRADE_MODEL = "bankseg-upgrade"
SEGMENTER_MODEL = "bankseg-segmenter"
#: Registered model name per ``model=`` choice of the jobs (and the exported segmenter).
MODEL_NAMES: dict[str, str] = {
    "personas": PERSONAS_MODEL,
    "churn": CHURN_MODEL,
    "conversion": CONVERSION_MODEL,
    "upgrade": UPGRADE_MODEL,
    "segmenter": SEGMENTER_MODEL,
}
CHALLENGER = "challenger"
CHAMPION = "champion"
#: The registry prefix of the simulated default (conf/data/synthetic.yaml registry_prefix): the plain names above.
DEFAULT_PREFIX = "bankseg"
#: Model-version and run tag naming the data source (the data config's name) a model was trained on or serves.
TAG_DATA_SOURCE = "bankseg.data_source"

_NOT_FOUND = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)}


class AliasNotFoundError(ValueError):
    """A registered model, or the alias asked for, does not exist in the registry."""


def registered_name(model: str) -> str:
    """Registered model name for a job's ``model=`` choice: ``"churn"`` -> ``"bankseg-churn"``."""
    try:
        return MODEL_NAMES[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(MODEL_NAMES)}") from None


def source_model_name(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """A registered name of one data source: ``bankseg-churn`` under prefix ``bankseg-berka`` -> ``bankseg-berka-churn``.

    ``name`` is a plain name (:data:`MODEL_NAMES`, a model config's ``registered_name``); the default prefix
    keeps it unchanged, so the simulated bank registers ``bankseg-churn`` and every other source its own names.
    """
    if not prefix:
        raise ValueError("registry.prefix is empty: models of different data sources would share names")
    if name.startswith(f"{prefix}-"):  # already this source's name
        return name
    return f"{prefix}-{name.removeprefix(DEFAULT_PREFIX + '-')}"


def registry_name(config: Mapping[str, Any], model: str) -> str:
    """The registered name of ``model`` (personas, churn, conversion, upgrade, segmenter) for a job's data source.

    ``config`` is a job's composed config or the resolved config a run logged: its ``registry.prefix``
    (conf/registry/default.yaml; the data config's name unless set) decides, so every job and report that names
    a model gets ``bankseg-churn`` for the simulated bank and ``bankseg-<data name>-churn`` for any other source.
    """
    try:
        prefix = config["registry"]["prefix"]
    except (KeyError, TypeError):
        raise ValueError("the config has no registry.prefix: compose it with the registry group "
                         "(defaults: - registry: default)") from None
    return source_model_name(registered_name(model), str(prefix))


def check_same_source(versions: Mapping[str, ModelVersion], expected: str | None = None) -> str | None:
    """The one data source that every version was trained on (its :data:`TAG_DATA_SOURCE` tag).

    Raises ValueError naming each version's source when they differ, or differ from ``expected``; versions
    registered before the tag existed are not judged. Returns the common source (or ``expected``).
    """
    sources = {label: (mv.tags or {}).get(TAG_DATA_SOURCE) for label, mv in versions.items()}
    known = {label: source for label, source in sources.items() if source}
    found = set(known.values()) | ({expected} if expected else set())
    if len(found) > 1:
        listed = ", ".join(f"{label} on {source!r}" for label, source in known.items())
        wanted = f" (this job's data: {expected!r})" if expected else ""
        raise ValueError(f"models trained on different data sources cannot be compared or combined: {listed}"
                         f"{wanted}; give each source its own registry.prefix (the default: its data config's name)")
    return next(iter(found), None)


def version_uri(name: str, version: str | int) -> str:
    """``models:/<name>/<version>``: a URI fixed to one version (an alias URI can move under you)."""
    return f"models:/{name}/{version}"


# ------------------------------------------------------------------------------------------------- versions
def find_version(name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at, or None when the model or the alias does not exist."""
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return None
        raise


def resolve_version(name: str, alias: str = CHAMPION) -> ModelVersion:
    """The version ``alias`` points at; :class:`AliasNotFoundError` (a ValueError) naming what exists if none."""
    version = find_version(name, alias)
    if version is not None:
        return version
    client = mlflow.MlflowClient()
    try:
        aliases = sorted(client.get_registered_model(name).aliases)
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            raise AliasNotFoundError(
                f"no registered model {name!r} in {mlflow.get_registry_uri()}: train and register it first"
            ) from None
        raise
    raise AliasNotFoundError(
        f"model {name!r} has no alias {alias!r} (its aliases: {aliases or 'none'}); "
        f"register a version or promote one first"
    )


def load_model(name: str, alias: str = CHAMPION) -> PyFuncModel:
    """Load the version ``alias`` points at as an MLflow pyfunc model.

    Raises :class:`AliasNotFoundError` with a readable message when the model or alias is missing. The alias is
    resolved once and that exact version is loaded; call :func:`resolve_version` to record which it was.
    """
    version = resolve_version(name, alias)
    return mlflow.pyfunc.load_model(version_uri(name, version.version))


def register_model(
    model_uri: str,
    name: str,
    alias: str | None = CHALLENGER,
    tags: Mapping[str, str] | None = None,
    champion_if_none: bool = True,
) -> ModelVersion:
    """Register a logged model as a new version of ``name``, give it ``alias``, and return the version.

    ``model_uri`` is what ``mlflow.<flavor>.log_model`` returned (``ModelInfo.model_uri``, ``models:/m-...``) or
    ``runs:/<run_id>/<name>``. The registered model is created on first use. When ``champion_if_none`` and the
    model has no ``champion`` yet, this version also becomes champion (the first model becomes champion);
    the version tag ``promotion.decision=first_champion`` records it.
    """
    client = mlflow.MlflowClient()
    version = mlflow.register_model(model_uri, name, tags=dict(tags or {}))
    if alias is not None:
        client.set_registered_model_alias(name, alias, version.version)
    if champion_if_none and alias != CHAMPION and find_version(name, CHAMPION) is None:
        client.set_registered_model_alias(name, CHAMPION, version.version)
        client.set_model_version_tag(name, version.version, "promotion.decision", "first_champion")
    return client.get_model_version(name, version.version)


def registry_aliases(name: str) -> dict[str, str]:
    """``{alias: version}`` of a registered model now (empty when it does not exist yet)."""
    try:
        aliases = mlflow.MlflowClient().get_registered_model(name).aliases
    except MlflowException as err:
        if err.error_code in _NOT_FOUND:
            return {}
        raise
    return {alias: str(version) for alias, version in aliases.items()}


def withdraw_version(name: str, version: str | int, run_id: str | None = None, reason: str = "",
                     restore: Mapping[str, str] | None = None) -> None:
    """Delete a version registered by a run that then failed a later check, and put its aliases back.

    A run that failed must leave nothing registered: not a ``challenger``, and above all not a first
    ``champion`` that the segmenter would pick up. ``restore`` is :func:`registry_aliases` taken before
    registering: the aliases that pointed elsewhere then point there again. ``run_id`` (the run that
    registered it) is ended FAILED with the reason in its ``bankseg.failure`` tag.
    """
    client = mlflow.MlflowClient()
    client.delete_model_version(name, str(version))
    for alias, previous in (restore or {}).items():
        if str(previous) != str(version):
            client.set_registered_model_alias(name, alias, previous)
    if run_id is not None:
        client.set_tag(run_id, "bankseg.failure", f"{name} version {version} withdrawn: {reason}"[:5000])
        client.set_terminated(run_id, status="FAILED")


# ------------------------------------------------------------------------------------------------ promotion
@dataclass(frozen=True)
class PromotionGate:
    """What a challenger must beat: ``metric`` better than the champion's by at least ``min_gain``.

    ``metric`` names the score the caller's evaluate function computes (e.g. ``oot/auc``); it is used for
    the log. The challenger passes when it is strictly better and the gain (challenger - champion, or the reverse
    when ``higher_is_better`` is False) is at least ``min_gain``. Keys match conf/promotion/default.yaml.
    """

    metric: str
    min_gain: float = 0.0
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not self.metric:
            raise ValueError("PromotionGate.metric is empty")
        if not (math.isfinite(self.min_gain) and self.min_gain >= 0.0):
            raise ValueError(f"PromotionGate.min_gain must be a finite number >= 0, got {self.min_gain}")

    def gain(self, challenger_score: float, champion_score: float) -> float:
        """How much better the challenger is (negative when worse)."""
        diff = challenger_score - champion_score
        return diff if self.higher_is_better else -diff

    def passes(self, challenger_score: float, champion_score: float) -> bool:
        gain = self.gain(challenger_score, champion_score)
        return gain > 0.0 and gain >= self.min_gain


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of :func:`promote`: scores of both versions and whether ``champion`` moved.

    ``champion_version``/``champion_score`` are those of the champion before the decision (None when there was
    none); ``run_id`` is the MLflow run holding the comparison.
    """

    promoted: bool
    challenger_version: str
    champion_version: str | None
    challenger_score: float
    champion_score: float | None
    reason: str
    metric: str
    run_id: str | None = None


def _score(evaluate: Callable[[str], float], name: str, version: str, role: str) -> float:
    score = float(evaluate(version_uri(name, version)))
    if not math.isfinite(score):
        raise ValueError(f"evaluate returned {score} for the {role} ({name} version {version})")
    return score


def _metric_key(metric: str) -> str:
    return metric.replace("/", "_")


def promote(
    name: str,
    evaluate: Callable[[str], float],
    gate: PromotionGate,
    challenger_alias: str = CHALLENGER,
    champion_alias: str = CHAMPION,
) -> PromotionDecision:
    """Move ``champion`` to the challenger when it passes ``gate``; log the comparison either way.

    ``evaluate`` receives a version URI (``models:/<name>/<version>``) and returns the gate's metric; the caller
    makes it score on one fixed out-of-time set so the two versions are compared on the same data. Cases: no
    champion -> the challenger becomes champion; challenger already champion -> nothing moves; otherwise
    the gate decides; challenger and champion trained on different data sources are refused (ValueError).
    The comparison goes to the active MLflow run if there is one (so ``bankseg-promote`` can
    wrap it in :func:`~bankseg.models.tracking.start_job_run`), else to a new run ``promote-<name>``:
    params ``promotion.*``, metrics ``promotion/challenger_<metric>``, ``promotion/champion_<metric>``,
    ``promotion/gain``, ``promotion/promoted``, tag ``promotion.decision``, artifact ``promotion.json``. The
    challenger version gets ``promotion.*`` tags, a replaced champion ``promotion.replaced_by``. One promotion
    per run. Raises :class:`AliasNotFoundError` when there is
    no challenger.
    """
    client = mlflow.MlflowClient()
    challenger = resolve_version(name, challenger_alias)
    champion = find_version(name, champion_alias)
    if champion is not None:
        check_same_source({f"challenger v{challenger.version}": challenger, f"champion v{champion.version}": champion})
    challenger_score = _score(evaluate, name, challenger.version, "challenger")

    champion_score: float | None = None
    if champion is None:
        promoted, decision = True, "first_champion"
        reason = f"no {champion_alias} yet: the first model becomes {champion_alias}"
    elif str(champion.version) == str(challenger.version):
        promoted, decision = False, "already_champion"
        champion_score = challenger_score
        reason = f"version {challenger.version} is already {champion_alias}"
    else:
        champion_score = _score(evaluate, name, champion.version, "champion")
        gain = gate.gain(challenger_score, champion_score)
        promoted = gate.passes(challenger_score, champion_score)
        decision = "promoted" if promoted else "refused"
        direction = "higher" if gate.higher_is_better else "lower"
        reason = (
            f"{gate.metric}: challenger v{challenger.version} {challenger_score:.6g} vs champion "
            f"v{champion.version} {champion_score:.6g}, gain {gain:+.6g} "
            f"({'passes' if promoted else 'fails'} the gate: {direction} is better, strictly better "
            f"and by at least {gate.min_gain:g})"
        )

    if promoted:
        client.set_registered_model_alias(name, champion_alias, challenger.version)

    run_id = _log_promotion(
        name, gate, challenger, champion, challenger_score, champion_score, promoted, decision, reason
    )
    result = PromotionDecision(
        promoted=promoted,
        challenger_version=str(challenger.version),
        champion_version=None if champion is None else str(champion.version),
        challenger_score=challenger_score,
        champion_score=champion_score,
        reason=reason,
        metric=gate.metric,
        run_id=run_id,
    )
    version_tags = {
        "promotion.decision": decision,
        "promotion.metric": gate.metric,
        "promotion.challenger_score": repr(challenger_score),
        "promotion.champion_version": str(result.champion_version),
        "promotion.champion_score": repr(champion_score),
        "promotion.run_id": run_id,
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(name, challenger.version, key, value)
    if promoted and champion is not None:
        client.set_model_version_tag(name, champion.version, "promotion.replaced_by", str(challenger.version))
    return result


def _log_promotion(
    name: str,
    gate: PromotionGate,
    challenger: ModelVersion,
    champion: ModelVersion | None,
    challenger_score: float,
    champion_score: float | None,
    promoted: bool,
    decision: str,
    reason: str,
) -> str:
    """Write the comparison to the active run (or a new one); return its run id."""
    key = _metric_key(gate.metric)
    params = {
        # Not "promotion.metric" etc.: the job's flattened config may hold those keys with another spelling
        # of the same value (0 vs 0.0), and MLflow refuses to change a logged param.
        "promotion.model_name": name,
        "promotion.gate_metric": gate.metric,
        "promotion.gate_min_gain": gate.min_gain,
        "promotion.gate_higher_is_better": gate.higher_is_better,
        "promotion.challenger_version": str(challenger.version),
        "promotion.champion_version": None if champion is None else str(champion.version),
    }
    metrics = {f"promotion/challenger_{key}": challenger_score, "promotion/promoted": float(promoted)}
    if champion_score is not None:
        metrics[f"promotion/champion_{key}"] = champion_score
        metrics["promotion/gain"] = gate.gain(challenger_score, champion_score)
    record = {
        "model": name,
        "gate": asdict(gate),
        "challenger": {
            "version": str(challenger.version),
            "run_id": challenger.run_id,
            "score": challenger_score,
        },
        "champion": None
        if champion is None
        else {"version": str(champion.version), "run_id": champion.run_id, "score": champion_score},
        "promoted": promoted,
        "decision": decision,
        "reason": reason,
    }
    active = mlflow.active_run()
    # A run started here ends FAILED if logging raises; an active run belongs to the caller.
    context = nullcontext(active) if active is not None else mlflow.start_run(run_name=f"promote-{name}")
    with context as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"promotion.decision": decision, "promotion.reason": reason[:5000]})
        mlflow.log_text(json.dumps(record, indent=2, ensure_ascii=False), "promotion.json")
    return run.info.run_id
