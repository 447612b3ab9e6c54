"""What the MLflow UI shows a person: the experiment kind and descriptions of experiments, runs,
registered models and their versions (markdown)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlflow.tracking import MlflowClient

# The MLflow UI opens an experiment in its GenAI mode unless this tag says otherwise.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
# The description of an experiment, a run, shown in the UI.
NOTE_TAG = "mlflow.note.content"
# Metrics a version's description lists, when the run has them.
SHOWN_METRICS = (
    "silhouette",
    "stability_ari",
    "davies_bouldin",
    "calinski_harabasz",
    "n_clusters",
    "min_segment_fraction",
    "noise_fraction",
)


def describe_experiment(client: MlflowClient, experiment_id: str, description: str) -> None:
    """Open the experiment in the UI's model-training mode, with its business question."""
    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    if description:
        client.set_experiment_tag(experiment_id, NOTE_TAG, description)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def persona_table(personas: Sequence[Mapping[str, Any]]) -> str:
    """The persona table as markdown: segment, name, size, share, first recommendation."""
    lines = [
        "| segment | persona | customers | share | first recommendation |",
        "|---|---|---|---|---|",
    ]
    for p in personas:
        recs = p.get("recommendations") or [""]
        lines.append(
            f"| {p['segment']} | {_cell(p['name'])} | {p['size']} | {float(p['share']):.1%} "
            f"| {_cell(recs[0])} |"
        )
    return "\n".join(lines)


def version_description(
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    personas: Sequence[Mapping[str, Any]] | None = None,
    extra: Sequence[str] = (),
) -> str:
    """A registered version's markdown: data, features, algorithm, metrics, personas, and any
    ``extra`` sections (explanations, a migration report)."""
    algorithm = params.get("algorithm", "?")
    settings = ", ".join(
        f"{k.split('.', 1)[1]}={v}"
        for k, v in sorted(params.items())
        if k.startswith(f"{algorithm}.")
    )
    lines = [
        f"**Data**: {params.get('dataset', '?')} ({params.get('data_source', '?')}, "
        f"{params.get('n_rows', '?')} customers)",
        f"**Features**: {params.get('feature_set', '?')} ({params.get('features', '?')}), "
        f"scaled {params.get('scaler', '?')}",
        f"**Algorithm**: {algorithm} ({params.get('estimator', '?')}; {settings})",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {m} | {metrics[m]:.4g} |" for m in SHOWN_METRICS if m in metrics]
    if personas:
        lines += ["", "**Personas**", "", persona_table(personas)]
    for section in extra:
        lines += ["", section]
    return "\n".join(lines)


def registered_model_description(dataset: str, features: str, columns: str, question: str) -> str:
    """A registered model's markdown: what it segments and how to score with it."""
    return "\n".join(
        [
            f"Customer segments of **{dataset}** on the feature set **{features}** ({columns}).",
            "",
            question,
            "",
            "Raw customer rows in (the dataset's columns as `pd.read_csv` reads them); out: "
            "`segment`, `persona`, `confidence`. The version with alias `champion` scores by "
            "default; `make promote` moves it, `make rollback` moves it back.",
        ]
    )
