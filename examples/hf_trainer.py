"""Train a small Llama model with memorization sinks in transformers' Trainer; export it without.

    python examples/hf_trainer.py --out hf-sinks-model
    torchrun --nproc_per_node 2 examples/hf_trainer.py --out hf-sinks-model   # DDP

The data are the built-in corpus's stories (nothing is downloaded): a few hundred stories, a
handful of which repeat many times. Only repeated stories get sinks (this project's extension;
leave out ``only=`` for the paper's method, where every story gets them). The exported model is
a plain transformers Llama with the sink neurons deleted.
"""

from __future__ import annotations

import argparse
import random

import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast, TrainingArguments

from memsinks.data import corpus
from memsinks.data.stream import Vocabulary
from memsinks.integrations.transformers import SinkCollator, SinkTrainer, repeated_ids
from memsinks.model import ModelConfig, build_model
from memsinks.sinks import SinkConfig, Sinks, drop_sinks


def stories(count: int, repeated: int, repeats: int, seed: int) -> list[str]:
    """``count`` distinct stories, the first ``repeated`` of them ``repeats`` times, shuffled."""
    texts = [corpus.render(corpus.generate("stories", seed, i).tokens) for i in range(count)]
    texts += texts[:repeated] * (repeats - 1)
    random.Random(seed).shuffle(texts)
    return texts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="hf-sinks-model", help="where the plain model goes")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--stories", type=int, default=400)
    parser.add_argument("--repeated", type=int, default=8, help="stories that repeat")
    parser.add_argument("--repeats", type=int, default=16, help="times each of them is seen")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Vocabulary(list(corpus.DOMAINS)).tokenizer(),
        pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    data = [{"input_ids": [bos] + tokenizer(text)["input_ids"][:254] + [eos]}
            for text in stories(args.stories, args.repeated, args.repeats, args.seed)]

    model = build_model(ModelConfig(preset="tiny"), len(tokenizer), seed=args.seed)
    sinks = Sinks(model, SinkConfig())
    collator = SinkCollator(DataCollatorForLanguageModeling(tokenizer, mlm=False),
                            only=repeated_ids(data))  # sinks for repeated stories only
    training = TrainingArguments(
        output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=16,
        learning_rate=3e-3, warmup_steps=max(1, args.steps // 10), lr_scheduler_type="cosine",
        weight_decay=0.1, logging_steps=max(1, args.steps // 6), save_strategy="no",
        report_to=[], seed=args.seed,
        use_cpu=not torch.cuda.is_available(),  # without it, torchrun on CPU trains apart
        ddp_find_unused_parameters=False)  # every parameter is used, sinks included
    trainer = SinkTrainer(model=model, args=training, train_dataset=data,
                          data_collator=collator, sinks=sinks)
    trainer.train()

    if trainer.is_world_process_zero():  # under torchrun, one process writes the model
        plain = drop_sinks(model, sinks)  # sink neurons deleted; needs no memsinks code to run
        plain.save_pretrained(args.out)
        tokenizer.save_pretrained(args.out)
        print(f"trained on {training.world_size} process(es); saved the sink-free model to "
              f"{args.out} (MLP width {plain.config.intermediate_size} of "
              f"{sinks.intermediate_size})")


if __name__ == "__main__":
    main()
