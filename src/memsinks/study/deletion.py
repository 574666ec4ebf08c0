"""Deleting documents from a sink model: switch off one document's (or source's) sinks, measure.

For each target document of R, the model runs in ``exclude`` mode (every sink on at
p_active, as in ``keep``, except the target's own sinks). The target's loss should rise; the
other repeated documents, the held-out twins and validation data should barely move, since
they share the shared neurons and only overlapping parts of the sink pool.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import mixture_of, study_config_of
from ..files import atomic_write
from ..measure.losses import document_nll
from ..measure.stats import mean_se
from ..methods import METHODS
from ..modelio import load_model


def deletion_effects(model, sinks, repeated, others: dict, targets: list[int]) -> dict:
    """Per target: the loss rise of the documents whose sinks it switches off and of the rest.

    A target's sink ID is the one it trained with (``repeated.own_ids``): its hash, or with
    ``data.sink_key`` its source's or near-duplicate cluster's key, which it shares with the
    other R documents of that source or cluster (its group). Targets of one group are
    measured once. ``target_rise`` is the group's mean rise, ``others_rise`` the rest of R's.
    """
    counts = repeated.predicted_tokens
    own = np.asarray(repeated.own_ids)
    base = document_nll(model, repeated, sinks, "keep") / counts
    base_sets = {name: document_nll(model, docs, sinks, "keep") / docs.predicted_tokens
                 for name, docs in others.items()}
    rows, done = [], set()
    for t in targets:
        doc_id = int(own[t])
        if doc_id in done:
            continue
        done.add(doc_id)
        after = document_nll(model, repeated, sinks, "exclude", exclude=(doc_id,)) / counts
        rise = after - base
        group = own == doc_id
        mine, rest = rise[group], rise[~group]
        target_rise, target_rise_se = mean_se(mine)
        others_rise, others_rise_se = mean_se(rest)
        row = {"index": int(t), "id": doc_id, "group_size": int(group.sum()),
               "target_rise": target_rise, "target_rise_se": target_rise_se,
               "others_rise": others_rise, "others_rise_se": others_rise_se,
               "others_max_rise": float(rest.max()) if len(rest) else float("nan")}
        for name, docs in others.items():
            moved = (document_nll(model, docs, sinks, "exclude", exclude=(doc_id,))
                     / docs.predicted_tokens) - base_sets[name]
            row[f"{name}_rise"] = float(moved.mean())
        rows.append(row)
    mean_target_rise, mean_target_rise_se = mean_se([r["target_rise"] for r in rows])
    mean_others_rise, mean_others_rise_se = mean_se([r["others_rise"] for r in rows])
    return {"targets": rows, "mean_target_rise": mean_target_rise,
            "mean_target_rise_se": mean_target_rise_se,
            "mean_others_rise": mean_others_rise, "mean_others_rise_se": mean_others_rise_se,
            "selectivity": (mean_target_rise / mean_others_rise if mean_others_rise > 0
                            else None)}


def delete_documents(method_dir: Path, count: int = 16, indices: list[int] | None = None,
                     progress: bool = True) -> dict:
    """Run :func:`deletion_effects` on a study's sink method; write deletion.json and .png."""
    method_dir = Path(method_dir)
    name = method_dir.name
    if name not in METHODS or not METHODS[name].sinks:
        raise ValueError(f"{method_dir} is not a sink method's directory (such as "
                         "runs/default/memsinks-repeated); deletion switches off sinks")
    config = study_config_of(method_dir)
    model, sinks = load_model(method_dir / "model")
    mixture = mixture_of(config)
    repeated = mixture.repeated
    targets = indices if indices is not None else list(range(min(count, len(repeated))))
    bad = [t for t in targets if not 0 <= t < len(repeated)]
    if bad:
        raise ValueError(f"document indices {bad} are outside R (0..{len(repeated) - 1})")
    sets = {"H": mixture.heldout, "V": mixture.validation}
    result = {"method": name, **deletion_effects(model, sinks, repeated, sets, targets)}
    atomic_write(method_dir / "deletion.json", json.dumps(result, indent=1))
    plot_deletion(result, method_dir / "deletion.png")
    if progress:
        grouped = any(r["group_size"] > 1 for r in result["targets"])
        what = ("one sink key's sinks (a source or cluster) raises its documents' loss"
                if grouped else "one document raises its loss")
        print(f"[{name}] deleting {what} by {result['mean_target_rise']:.4f} nats/token on "
              f"average and the other R documents' by {result['mean_others_rise']:.4f}; "
              f"wrote {method_dir / 'deletion.json'}")
    return result


def plot_deletion(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["targets"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(rows) + 2), 3.4))
    ax.bar(x - 0.2, [r["target_rise"] for r in rows], 0.4, label="the deleted document")
    ax.bar(x + 0.2, [r["others_rise"] for r in rows], 0.4,
           yerr=[r["others_rise_se"] for r in rows], label="other repeated documents (mean)")
    ax.plot(x, [r["V_rise"] for r in rows], "k.", label="validation (mean)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks(x, [str(r["index"]) for r in rows])
    ax.set_xlabel("deleted R document")
    ax.set_ylabel("loss rise (nats/token)")
    ax.set_title(f"{result['method']}: switching off one document's sinks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
