"""Rows of a batch: one document per row (collate) or packed, and their layout."""

import numpy as np
import pytest
import torch

from memsinks.data.packing import collate, pack
from memsinks.data.stream import BOS, EOS, PAD

CPU = torch.device("cpu")


def test_hand_made_layout_splits_long_documents_and_keeps_boundaries():
    a, b, c = np.array([5, 6, 7]), np.arange(8, 15), np.array([15])
    batch = pack([a, b, c], [11, 22, 33], CPU, row_len=6)
    # a (5 tokens with BOS/EOS) opens row 0; b (9) is split into 6 + 3: the first piece fills
    # row 1, the second does not fit row 0's last slot and opens row 2, where c (3) follows
    assert batch.input_ids.tolist() == [[BOS, 5, 6, 7, EOS, PAD],
                                        [BOS, 8, 9, 10, 11, 12],
                                        [13, 14, EOS, BOS, 15, EOS]]
    # no label at a piece's first token: nothing before it in the row is its context
    assert batch.labels.tolist() == [[-100, 5, 6, 7, EOS, -100],
                                     [-100, 8, 9, 10, 11, 12],
                                     [-100, 14, EOS, -100, 15, EOS]]
    assert batch.doc_ids.tolist() == [[11] * 5 + [0], [22] * 6, [22, 22, 22, 33, 33, 33]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 0], [0, 1, 2, 3, 4, 5],
                                           [0, 1, 2, 0, 1, 2]]
    assert batch.doc_index.tolist() == [[0] * 5 + [-1], [1] * 6, [1, 1, 1, 2, 2, 2]]
    assert batch.offset.tolist() == [[0, 1, 2, 3, 4, 0], [0, 1, 2, 3, 4, 5],
                                     [6, 7, 8, 0, 1, 2]]
    causal = torch.ones(3, 3, dtype=torch.bool).tril()
    row2 = torch.block_diag(causal, causal)
    assert torch.equal(batch.attention_mask[2, 0], row2)
    row0 = torch.block_diag(torch.ones(5, 5, dtype=torch.bool).tril(), torch.ones(1, 1).bool())
    assert torch.equal(batch.attention_mask[0, 0], row0)  # padding attends only to padding
    assert batch.attention_mask.shape == (3, 1, 6, 6)
    assert batch.row_group.tolist() == [False, False, False]


def test_groups_get_rows_of_their_own_and_rows_trim_and_round_up():
    docs = [np.array([5]), np.array([6]), np.array([7])]
    batch = pack(docs, [1, 2, 3], CPU, row_len=16, groups=[False, True, False], rows_multiple=4)
    assert batch.row_group.tolist() == [False, True, False, False]
    assert batch.input_ids.tolist() == [[BOS, 5, EOS, BOS, 7, EOS], [BOS, 6, EOS] + [PAD] * 3,
                                        [PAD] * 6, [PAD] * 6]
    assert batch.labels[2:].eq(-100).all()
    with pytest.raises(ValueError, match="too short"):
        pack(docs, [1, 2, 3], CPU, row_len=1)


def test_document_sums_and_place_follow_the_layout():
    batch = pack([np.array([5, 6, 7]), np.arange(8, 15), np.array([15])], [1, 2, 3], CPU,
                 row_len=6)
    per_target = torch.ones(batch.rows, 5)
    # a: 4 targets; b: 5 + 2 (its second piece's first token is not predicted); c: 2,
    # and the padding counts for nobody
    assert batch.document_sums(per_target * (batch.labels[:, 1:] != -100), 3).tolist() == [
        4.0, 7.0, 2.0]
    plain = collate([np.array([5, 6, 7]), np.arange(8, 15), np.array([15])], [1, 2, 3], CPU)
    assert torch.equal(batch.place(plain.input_ids), batch.input_ids)



def test_collate_pads_right_and_tags_every_token_with_its_document():
    batch = collate([np.array([5, 6, 7]), np.array([8])], [11, 22], torch.device("cpu"))
    assert batch.input_ids.tolist() == [[BOS, 5, 6, 7, EOS], [BOS, 8, EOS, PAD, PAD]]
    assert batch.labels.tolist() == [[BOS, 5, 6, 7, EOS], [BOS, 8, EOS, -100, -100]]
    assert batch.doc_ids.tolist() == [[11] * 5, [22, 22, 22, 0, 0]]
