"""Deleting documents from a sink model: the effects computed from per-document losses."""

import numpy as np
import pytest

from memsinks.data.stream import DocSet
from memsinks.study import deletion


def docs(name: str, lengths: list[int], own: list[int]) -> DocSet:
    tokens = [np.full(n, 5) for n in lengths]
    return DocSet(name, tokens, np.zeros(len(tokens)), np.arange(1, len(tokens) + 1),
                  sink_ids=np.array(own))


def fake_nll(raise_target: float, raise_others: float):
    """Per-document NLL sums: 2 nats a token in keep mode; excluding an ID raises the tokens
    of the documents keyed on it by ``raise_target`` and every other one's by ``raise_others``."""
    def document_nll(model, documents, sinks, mode, exclude=()):
        per_token = np.full(len(documents), 2.0)
        if mode == "exclude":
            mine = np.isin(documents.own_ids, exclude)
            per_token += np.where(mine, raise_target, raise_others)
        return per_token * documents.predicted_tokens
    return document_nll


def test_each_key_is_deleted_once_and_its_documents_rise_against_the_rest(monkeypatch):
    monkeypatch.setattr(deletion, "document_nll", fake_nll(0.5, 0.125))
    # R: documents 0 and 1 share key 7 (a source), 2 and 3 have their own keys
    repeated = docs("R", [3, 4, 5, 6], own=[7, 7, 8, 9])
    others = {"H": docs("H", [2, 2], own=[11, 12]), "V": docs("V", [3], own=[13])}
    result = deletion.deletion_effects(None, None, repeated, others, targets=[0, 1, 3])
    rows = result["targets"]
    assert [(r["index"], r["id"], r["group_size"]) for r in rows] == [(0, 7, 2), (3, 9, 1)]
    assert [r["target_rise"] for r in rows] == [0.5, 0.5]
    assert [r["others_rise"] for r in rows] == [0.125, 0.125]
    assert rows[0]["target_rise_se"] == 0.0 and np.isnan(rows[1]["target_rise_se"])
    assert rows[0]["others_rise_se"] == 0.0 and rows[0]["others_max_rise"] == 0.125
    assert rows[0]["H_rise"] == rows[0]["V_rise"] == 0.125
    assert result["mean_target_rise"] == 0.5 and result["mean_others_rise"] == 0.125
    assert result["mean_target_rise_se"] == 0.0 and result["selectivity"] == 4.0


def test_a_key_shared_by_all_of_r_leaves_no_others_to_compare(monkeypatch):
    monkeypatch.setattr(deletion, "document_nll", fake_nll(0.25, 0.0))
    result = deletion.deletion_effects(None, None, docs("R", [3, 3], own=[4, 4]), {}, [0, 1])
    (row,) = result["targets"]
    assert row["group_size"] == 2 and row["target_rise"] == 0.25
    assert np.isnan(row["others_rise"]) and np.isnan(result["mean_others_rise"])
    assert result["selectivity"] is None


def test_the_figure_and_a_method_without_sinks(tmp_path):
    result = {"method": "memsinks", "targets": [
        {"index": i, "target_rise": 0.5, "others_rise": 0.1, "others_rise_se": 0.01,
         "V_rise": 0.05} for i in range(3)]}
    deletion.plot_deletion(result, tmp_path / "deletion.png")
    assert (tmp_path / "deletion.png").stat().st_size > 0
    with pytest.raises(ValueError, match="is not a sink method's directory"):
        deletion.delete_documents(tmp_path / "standard")
