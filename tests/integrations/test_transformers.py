"""Sinks in transformers' Trainer: the collator, SinkTrainer against a plain loop, the example."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    DataCollatorForLanguageModeling,
    DataCollatorWithFlattening,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    TrainingArguments,
)

from memsinks.data.corpus import build_tokenizer
from memsinks.integrations.transformers import SinkCollator, SinkTrainer, example_id, repeated_ids
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks, document_id, drop_sinks

VOCAB = 40
CONFIG = SinkConfig(p_shared=0.5, p_active=0.5)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hf_trainer.py"


def tokenizer(padding_side: str = "right") -> PreTrainedTokenizerFast:
    words = [f"w{i}" for i in range(VOCAB - 4)]
    tok = PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(words), pad_token="<pad>",
                                  bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")
    tok.padding_side = padding_side
    return tok


def tiny_model() -> LlamaForCausalLM:
    config = ModelConfig(num_layers=2, hidden_size=32, intermediate_size=64, num_heads=4,
                         num_kv_heads=2, max_seq_len=64)
    return build_model(config, vocab_size=VOCAB, seed=0)


def examples(count: int = 12) -> list[dict]:
    """Token lists of varied lengths (no padding id 0 among them); some repeat, some carry an
    explicit ``sink_id``."""
    rng = np.random.default_rng(0)
    distinct = [rng.integers(4, VOCAB, size=int(rng.integers(4, 15))).tolist() for _ in range(8)]
    out = []
    for i in range(count):
        example = {"input_ids": distinct[[0, 1, 0, 2, 3, 1, 4, 0, 5, 6, 2, 7][i % 12]]}
        if i % 4 == 3:
            example["sink_id"] = 1000 + i
        out.append(example)
    return out


def collator(kind: str, only=None) -> SinkCollator:
    base = (DataCollatorWithFlattening() if kind == "flat"
            else DataCollatorForLanguageModeling(tokenizer(), mlm=False))
    return SinkCollator(base, only=only)


# -- the collator ------------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_gets_zero_and_rows_their_ids(side):
    data = examples(4)
    batch = SinkCollator(DataCollatorForLanguageModeling(tokenizer(side), mlm=False))(data)
    ids, mask = batch["sink_ids"], batch["attention_mask"].bool()
    assert ids.dtype == torch.int64 and ids.shape == batch["input_ids"].shape
    assert (ids[~mask] == 0).all()
    for row, example in enumerate(data):
        want = example.get("sink_id", document_id(example["input_ids"]))
        assert (ids[row][mask[row]] == want).all()
    assert mask.sum() < mask.numel()  # the lengths differ, so there is padding to check


def test_flattening_ids_follow_examples():
    data = examples(5) + [{"input_ids": []}]  # the flattening collator drops empty examples
    batch = collator("flat")(data)
    ids, positions = batch["sink_ids"], batch["position_ids"]
    assert ids.shape == batch["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in data))
    starts = (positions[0] == 0).nonzero().flatten().tolist()
    assert len(starts) == 5
    for example, a, b in zip(data, starts, starts[1:] + [ids.shape[1]], strict=False):
        assert (ids[0, a:b] == example_id(example)).all()


def test_column_over_hash_zero_and_only():
    hashed = {"input_ids": [5, 6, 7]}
    assert example_id(hashed) == document_id([5, 6, 7])
    assert example_id({**hashed, "sink_id": 7}) == 7
    assert example_id({**hashed, "sink_id": np.int64(9)}) == 9
    batch = collator("pad")([{**hashed, "sink_id": 0}, {"input_ids": [5, 6]}])
    assert (batch["sink_ids"][0] == 0).all() and (batch["sink_ids"][1, :2] != 0).all()
    assert "sink_id" not in batch
    data = examples()
    repeated = repeated_ids(data)
    assert repeated == {example_id(data[0]), example_id(data[1])}  # tokens seen 3 and 2 times
    batch = collator("pad", only=repeated)(data[:4])
    assert (batch["sink_ids"][0, :1] == example_id(data[0])).all()
    assert (batch["sink_ids"][3] == 0).all()  # has a sink_id seen once: not repeated
    assert repeated_ids([{"input_ids": [4]}, {"input_ids": [4], "sink_id": 0},
                         {"input_ids": [5], "sink_id": 0}]) == set()


def test_collator_bad_inputs_say_what_to_do():
    with pytest.raises(TypeError, match="integer document ID"):
        example_id({"input_ids": [4], "sink_id": 1.5})
    with pytest.raises(ValueError, match="non-negative 63-bit"):
        example_id({"input_ids": [4], "sink_id": -1})

    def shuffles(features):
        return {"input_ids": torch.tensor([list(reversed(f["input_ids"])) for f in features])}

    with pytest.raises(ValueError, match="not at either end"):
        SinkCollator(shuffles)([{"input_ids": [4, 5]}, {"input_ids": [6, 7]}])


# -- the trainer against a plain loop ------------------------------------------------------------
class InOrder(SinkTrainer):
    """Batches in dataset order, so that a plain loop can see the same ones."""

    def _get_train_sampler(self, *args, **kwargs):
        return torch.utils.data.SequentialSampler(self.train_dataset)


def arguments(tmp_path: Path, accum: int, steps: int, clip: float, **extra) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=2,
        gradient_accumulation_steps=accum, max_steps=steps, learning_rate=0.5, optim="sgd",
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=clip,
        save_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True,
        use_cpu=True, dataloader_num_workers=0, seed=0, **extra)


def reference(data: list[dict], accum: int, steps: int, clip: float, only=None,
              sinks_on: bool = True) -> LlamaForCausalLM:
    """A plain loop: padded micro-batches of 2, summed NLL over the step's label count."""
    model = tiny_model()
    sinks = Sinks(model, CONFIG)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    micro = [data[i:i + 2] for i in range(0, len(data), 2)]
    for step in range(steps):
        batches = []
        for part in micro[step * accum:(step + 1) * accum]:
            width = max(len(e["input_ids"]) for e in part)
            input_ids = torch.zeros(len(part), width, dtype=torch.long)
            ids = torch.zeros_like(input_ids)
            for row, example in enumerate(part):
                doc = example.get("sink_id", document_id(example["input_ids"]))
                if only is not None and doc not in only:
                    doc = 0
                n = len(example["input_ids"])
                input_ids[row, :n] = torch.tensor(example["input_ids"])
                ids[row, :n] = doc if sinks_on else 0
            lengths = torch.tensor([len(e["input_ids"]) for e in part])
            labels = input_ids.masked_fill(torch.arange(width) >= lengths[:, None], -100)
            batches.append((input_ids, labels, ids))
        total = sum(int((labels[:, 1:] != -100).sum()) for _, labels, _ in batches)
        for input_ids, labels, ids in batches:
            sinks.set_mode("train", ids=ids)
            logits = model(input_ids=input_ids, attention_mask=(labels != -100).long()).logits
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100,
                reduction="sum")
            (nll / total).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sinks.set_mode("off")
    return model


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


@pytest.mark.parametrize("kind,accum,only", [("pad", 2, False), ("flat", 2, True),
                                             ("pad", 1, False)])
def test_trainer_equals_plain_loop(tmp_path, kind, accum, only):
    torch.set_num_threads(1)
    steps, clip = 3, 1.0
    data = examples()[:steps * accum * 2]
    wanted = repeated_ids(data) if only else None
    model = tiny_model()
    sinks = Sinks(model, CONFIG)
    trainer = InOrder(model=model, args=arguments(tmp_path, accum, steps, clip),
                      train_dataset=data, data_collator=collator(kind, wanted), sinks=sinks)
    trainer.train()
    assert sinks.mode == "off"
    assert max_difference(model, reference(data, accum, steps, clip, wanted)) < 1e-5
    # not vacuous: without the sinks' masks the weights come out elsewhere
    assert max_difference(model, reference(data, accum, steps, clip, sinks_on=False)) > 1e-3


def test_evaluation_drops_sinks_and_keeps_the_id_column(tmp_path):
    data = examples(4)
    model = tiny_model()
    sinks = Sinks(model, CONFIG)
    trainer = SinkTrainer(model=model, args=arguments(tmp_path, 1, 1, 1.0), train_dataset=data,
                          eval_dataset=data, data_collator=collator("pad"), sinks=sinks)
    trainer.train()
    got = trainer.evaluate()["eval_loss"]
    batch = collator("pad")(data)  # one batch of 4: the evaluation's batch size is 8
    plain = drop_sinks(model, sinks).eval()
    with torch.no_grad():
        want = plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     labels=batch["labels"]).loss.item()
    assert got == pytest.approx(want, rel=1e-5)
    assert "sink_id" in trainer._signature_columns  # remove_unused_columns keeps the IDs
    trainer.eval_mode = "own"
    got = trainer.evaluate()["eval_loss"]
    model.eval()
    with torch.no_grad(), sinks.mode_of("own", ids=batch["sink_ids"]):
        want = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     labels=batch["labels"]).loss.item()
    assert got == pytest.approx(want, rel=1e-5)
    assert sinks.mode == "off"


def test_trainer_bad_batches_say_what_to_do(tmp_path):
    data = examples(4)
    model = tiny_model()
    sinks = Sinks(model, CONFIG)
    plain_collator = DataCollatorForLanguageModeling(tokenizer(), mlm=False)
    trainer = SinkTrainer(model=model, args=arguments(tmp_path, 1, 1, 1.0), train_dataset=data,
                          data_collator=plain_collator, sinks=sinks)
    with pytest.raises(ValueError, match="no sink_ids; wrap the data collator in .*SinkCollator"):
        trainer.train()
    batch = dict(collator("pad")(data))
    model.train()
    with pytest.raises(TypeError, match="int32, not an int64 tensor"):
        trainer.compute_loss(model, {**batch, "sink_ids": batch["sink_ids"].int()})
    with pytest.raises(ValueError, match="one ID per token"):
        trainer.compute_loss(model, {**batch, "sink_ids": batch["sink_ids"][:, :3]})
    with pytest.raises(ValueError, match="not attached to the trainer's model"):
        SinkTrainer(model=tiny_model(), args=arguments(tmp_path, 1, 1, 1.0),
                    train_dataset=data, data_collator=collator("pad"), sinks=sinks)
    with pytest.raises(ValueError, match="eval_mode"):
        SinkTrainer(model=model, args=arguments(tmp_path, 1, 1, 1.0), sinks=sinks,
                    eval_mode="train")


# -- the example ---------------------------------------------------------------------------------
def test_example_trains_and_exports_a_plain_model(tmp_path):
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("hf_trainer_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "model"
    module.main(["--out", str(out), "--steps", "2", "--stories", "6", "--repeated", "2",
                 "--repeats", "2"])
    plain = LlamaForCausalLM.from_pretrained(out)
    width = ModelConfig().resolved()["intermediate_size"]
    assert plain.config.intermediate_size == int(width * SinkConfig().p_shared)
    assert plain.model.layers[0].mlp.down_proj.in_features == plain.config.intermediate_size


def test_example_trains_under_torchrun_with_ddp(tmp_path):
    # two CPU processes (gloo) through accelerate, as on a GPU node with one process per GPU
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp"
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(EXAMPLE), "--out", str(out),
         "--steps", "2", "--stories", "16", "--repeated", "2", "--repeats", "4"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained on 2 process(es)" in done.stdout
    plain = LlamaForCausalLM.from_pretrained(out)
    assert plain.config.intermediate_size < ModelConfig().resolved()["intermediate_size"]
