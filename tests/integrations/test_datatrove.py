"""Sink keys on datatrove: the distributed table is byte-identical to memsinks annotate's, and
missing, corrupt and half-written shards get one sentence and lose nothing."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("datatrove")
pytest.importorskip("duckdb")

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402

from memsinks.cli import main  # noqa: E402
from memsinks.data.annotate import annotate  # noqa: E402
from memsinks.data.annotate.shards import ShardWriter, merge_shards  # noqa: E402
from memsinks.data.sources import load_tokenizer  # noqa: E402
from memsinks.integrations.datatrove import SinkKeys, annotate_local, annotation_pipeline  # noqa: E402

WORDS = [f"w{i}" for i in range(400)]


def write_corpus(root: Path, files: int = 5, per_file: int = 120, seed: int = 0) -> str:
    """jsonl shards with repeated texts across files, near-copies, blank texts and a field that
    is a string, missing, null or empty."""
    rng = random.Random(seed)
    pool = [" ".join(rng.choices(WORDS, k=rng.randint(12, 40))) for _ in range(60)]
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        with open(root / f"part-{f:02d}.jsonl", "w") as out:
            for i in range(per_file):
                text = rng.choice(pool)
                if rng.random() < 0.3:  # a near-copy: one word changed
                    words = text.split()
                    words[rng.randrange(len(words))] = rng.choice(WORDS)
                    text = " ".join(words)
                elif rng.random() < 0.3:
                    text = " ".join(rng.choices(WORDS, k=25))
                if i % 41 == 7:
                    text = "   "
                record: dict = {"text": text}
                if i % 5:
                    record["domain"] = rng.choice(["news", "wiki", None, ""])
                out.write(json.dumps(record) + "\n")
    return str(root)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "docs")


@pytest.mark.parametrize("key", ["hash", "field:domain", "minhash"])
def test_two_workers_give_the_one_machine_table_byte_for_byte(tmp_path, corpus, key):
    one = annotate(corpus, key, tmp_path / "one", progress=False)
    many = annotate_local(corpus, key, tmp_path / "many", workers=2, progress=False)
    assert many.read_bytes() == one.read_bytes()
    summary = json.loads((many.parent / "annotation.json").read_text())
    assert summary["identity"]["source"]["tasks"] == 5
    assert summary["counts"] == json.loads((one.parent / "annotation.json").read_text())["counts"]
    assert not (many.parent / ".shards").exists()


def test_fewer_tasks_than_files_read_contiguous_blocks(tmp_path, corpus):
    one = annotate(corpus, "hash", tmp_path / "one", progress=False)
    many = annotate_local(corpus, "hash", tmp_path / "many", workers=2, tasks=2, progress=False)
    assert many.read_bytes() == one.read_bytes()


def test_datatroves_own_reader_before_the_step_gives_the_same_table(tmp_path, corpus):
    """A user's pipeline: datatrove's JsonlReader, then SinkKeys; one task per file keeps the
    corpus order."""
    one = annotate(corpus, "field:domain", tmp_path / "one", progress=False)
    shards = tmp_path / "shards"
    LocalPipelineExecutor([JsonlReader(corpus), SinkKeys(shards, "field:domain")], tasks=5,
                          workers=2, logging_dir=str(shards / "logs")).run()
    merged = merge_shards(shards, tmp_path / "merged", progress=False)
    assert merged.read_bytes() == one.read_bytes()


def test_token_hashes_as_training_gives_them(tmp_path, corpus):
    texts = [json.loads(line)["text"] for f in sorted(Path(corpus).iterdir())
             for line in f.read_text().splitlines()]
    tokenizer = load_tokenizer("train:bpe", train_texts=texts, vocab_size=300)
    one = annotate(corpus, "hash", tmp_path / "one", tokenizer=tokenizer, max_tokens=8,
                   progress=False)
    files = sorted(Path(corpus).iterdir())
    for rank, group in enumerate([files[:2], files[2:]]):  # two tasks, written by hand
        writer = ShardWriter(tmp_path / "shards", rank, 2, "hash", tokenizer=tokenizer,
                             max_tokens=8, chunk=50)
        for path in group:
            for line in path.read_text().splitlines():
                writer.add(json.loads(line)["text"])
        writer.close()
    merged = merge_shards(tmp_path / "shards", tmp_path / "merged", progress=False)
    assert merged.read_bytes() == one.read_bytes()


def one_sentence(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message.count(". ") == 0, message
    return message


def test_missing_shard_is_named_and_the_rerun_finishes_it(tmp_path, corpus):
    one = annotate(corpus, "hash", tmp_path / "one", progress=False)
    shards = tmp_path / "shards"
    steps = annotation_pipeline(corpus, "hash", shards)
    LocalPipelineExecutor(steps, tasks=5, workers=1, local_tasks=3,
                          logging_dir=str(shards / "logs")).run()  # tasks 3 and 4 never ran
    with pytest.raises(ValueError, match=r"2 of 5 shard parts are missing \(tasks 3, 4") as error:
        merge_shards(shards, tmp_path / "merged", progress=False)
    one_sentence(error)
    before = (shards / "parts" / "000000.parquet").stat().st_mtime_ns
    LocalPipelineExecutor(annotation_pipeline(corpus, "hash", shards), tasks=5, workers=2,
                          logging_dir=str(shards / "logs")).run()
    assert (shards / "parts" / "000000.parquet").stat().st_mtime_ns == before  # not redone
    assert merge_shards(shards, tmp_path / "merged", progress=False).read_bytes() == \
        one.read_bytes()


def test_corrupt_part_is_named_and_redone_by_the_rerun(tmp_path, corpus):
    one = annotate(corpus, "minhash", tmp_path / "one", progress=False)
    out, shards = tmp_path / "out", tmp_path / "shards"
    annotate_local(corpus, "minhash", out, workers=1, shards=shards, keep_shards=True,
                   progress=False)
    (shards / "parts" / "000002.parquet").write_bytes(b"PAR1 not really parquet")
    (out / "annotation.json").unlink()
    with pytest.raises(ValueError, match="000002.parquet' is not readable parquet") as error:
        merge_shards(shards, out, progress=False)
    one_sentence(error)
    # as the sentence says: delete the part and its marker, rerun the job
    (shards / "parts" / "000002.parquet").unlink()
    (shards / "parts" / "000002.done").unlink()
    table = annotate_local(corpus, "minhash", out, workers=2, shards=shards, progress=False)
    assert table.read_bytes() == one.read_bytes()


def test_corrupt_input_file_is_named_and_finished_tasks_are_kept(tmp_path):
    corpus = write_corpus(tmp_path / "docs", files=3, per_file=40)
    good = pa.table({"text": ["a parquet document", "another one", "a parquet document"]})
    pq.write_table(good, tmp_path / "docs" / "part-99.parquet")
    one = annotate(corpus, "hash", tmp_path / "one", progress=False)
    (tmp_path / "docs" / "part-99.parquet").rename(tmp_path / "good.parquet")
    (tmp_path / "docs" / "part-99.parquet").write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    out = tmp_path / "out"
    with pytest.raises(Exception, match="part-99.parquet") as error:
        annotate_local(corpus, "hash", out, workers=1, progress=False)
    assert "replace or remove the file and rerun" in str(error.value)
    done = out / ".shards" / "parts" / "000002.done"
    assert done.is_file()  # the tasks before it are kept
    before = done.stat().st_mtime_ns
    (tmp_path / "good.parquet").replace(tmp_path / "docs" / "part-99.parquet")
    table = annotate_local(corpus, "hash", out, workers=1, progress=False, keep_shards=True)
    assert table.read_bytes() == one.read_bytes()
    assert done.stat().st_mtime_ns == before  # and not redone


def test_a_changed_input_file_is_refused_by_the_merge_and_redone_locally(tmp_path):
    corpus = write_corpus(tmp_path / "docs", files=3, per_file=30)
    out, shards = tmp_path / "out", tmp_path / "shards"
    annotate_local(corpus, "hash", out, workers=1, shards=shards, keep_shards=True,
                   progress=False)
    changed = Path(corpus) / "part-01.jsonl"
    changed.write_text(changed.read_text() + json.dumps({"text": "one more document"}) + "\n")
    with pytest.raises(ValueError, match="shard 1 was made from input files that have changed"):
        merge_shards(shards, tmp_path / "merged", progress=False)
    table = annotate_local(corpus, "hash", out, workers=1, shards=shards, progress=False)
    assert table.read_bytes() == annotate(corpus, "hash", tmp_path / "one",
                                          progress=False).read_bytes()


KILLED = """
import os, sys, time
from datatrove.executor import LocalPipelineExecutor
from memsinks.integrations.datatrove import annotation_pipeline

def stall(data, rank, world_size):  # task 2 stops after its first chunk until it is killed
    for i, document in enumerate(data):
        if rank == 2 and i == 30 and os.environ.get("STALL"):
            print("stalled", flush=True)
            time.sleep(600)
        yield document

if __name__ == "__main__":
    corpus, shards = sys.argv[1], sys.argv[2]
    reader, keys = annotation_pipeline(corpus, "hash", shards, chunk=10)
    LocalPipelineExecutor([reader, stall, keys], tasks=5, workers=1,
                          logging_dir=shards + "/logs").run()
"""


def test_a_worker_killed_mid_shard_is_resumed_by_the_rerun(tmp_path, corpus):
    script = tmp_path / "job.py"
    script.write_text(KILLED)
    shards = tmp_path / "shards"
    env = {**os.environ, "STALL": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}
    job = subprocess.Popen([sys.executable, str(script), corpus, str(shards)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           start_new_session=True)
    try:
        assert job.stdout.readline().strip() == "stalled"
        partial = shards / "parts" / "000002.parquet.tmp"
        deadline = time.monotonic() + 30
        while not partial.is_file():  # written in row groups (buffered), renamed at the end
            assert time.monotonic() < deadline, "task 2 wrote no partial part"
            time.sleep(0.1)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert sorted(p.name for p in (shards / "parts").glob("*.done")) == \
        ["000000.done", "000001.done"]
    assert not (shards / "parts" / "000002.parquet").exists()
    env.pop("STALL")
    subprocess.run([sys.executable, str(script), corpus, str(shards)], env=env, check=True,
                   capture_output=True)
    one = annotate(corpus, "hash", tmp_path / "one", progress=False)
    assert merge_shards(shards, tmp_path / "merged", progress=False).read_bytes() == \
        one.read_bytes()


def test_shards_of_two_jobs_are_refused(tmp_path, corpus):
    for rank, key in ((0, "hash"), (1, "minhash")):
        writer = ShardWriter(tmp_path / "shards", rank, 2, key)
        writer.add("some text")
        writer.close()
    with pytest.raises(ValueError, match="written by another job") as error:
        merge_shards(tmp_path / "shards", tmp_path / "out", progress=False)
    one_sentence(error)
    with pytest.raises(ValueError, match="holds no finished shard parts"):
        merge_shards(tmp_path / "nothing", tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="tasks must be 1 to 5"):
        annotate_local(corpus, "hash", tmp_path / "x", tasks=6)
    store = tmp_path / "store"
    store.mkdir()
    (store / "meta.json").write_text("{}")
    (store / "hashes.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="is a token store: annotate it on one machine"):
        annotate_local(str(store), "hash", tmp_path / "x")


def test_command_line(tmp_path, corpus, capsys):
    one = annotate(corpus, "hash", tmp_path / "one", progress=False)
    main(["annotate", corpus, "--key", "hash", "--out", str(tmp_path / "cli"), "--workers", "2",
          "--quiet"])
    assert "documents" in capsys.readouterr().out
    assert (tmp_path / "cli" / "annotations.parquet").read_bytes() == one.read_bytes()
    shards = tmp_path / "shards"
    LocalPipelineExecutor(annotation_pipeline(corpus, "hash", shards), tasks=5, workers=1,
                          logging_dir=str(shards / "logs")).run()
    main(["annotate-merge", str(shards), "--out", str(tmp_path / "merged"), "--quiet"])
    assert (tmp_path / "merged" / "annotations.parquet").read_bytes() == one.read_bytes()


# Slurm on this machine: sbatch runs an array job's script once per index, in turn, with the
# variables Slurm sets; srun runs its command; scontrol expands a one-host node list.
FAKE_SBATCH = """#!/usr/bin/env python3
import os, re, subprocess, sys
script = sys.argv[-1]
text = open(script).read()
env = dict(os.environ, SLURM_JOB_ID="7", SLURM_NODELIST="localhost", SLURM_NODEID="0")
for arg in sys.argv[1:-1]:
    if arg.startswith("--export=ALL,"):
        env.update(pair.split("=", 1) for pair in arg[len("--export=ALL,"):].split(","))
with open(os.environ["SBATCH_RECORD"], "a") as record:
    record.write(text + "\\n#----\\n")
array = re.search(r"^#SBATCH --array=0-(\\d+)", text, re.M)
for index in range(int(array.group(1)) + 1 if array else 1):
    subprocess.run(["bash", script], env=dict(env, SLURM_ARRAY_TASK_ID=str(index)), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("Submitted batch job 7")
"""
FAKE_SRUN = """#!/usr/bin/env bash
while [ "$#" -gt 0 ] && [ "$1" != launch_pickled_pipeline ]; do shift; done
exec "$@"
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
echo "$3"
"""


def test_the_slurm_example_runs_under_a_local_stand_in_for_slurm(tmp_path, corpus):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    root = Path(__file__).parents[2]
    env = {**os.environ, "SBATCH_RECORD": str(tmp_path / "sbatch.txt"),
           "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent),
                                    os.environ["PATH"]]),
           "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    shards = tmp_path / "shards"
    subprocess.run([sys.executable, str(root / "examples" / "annotate_slurm.py"), corpus,
                    "--key", "field:domain", "--shards", str(shards), "--partition", "cpu",
                    "--workers", "2"], env=env, check=True, capture_output=True, cwd=tmp_path)
    script = (tmp_path / "sbatch.txt").read_text()
    assert "#SBATCH --array=0-4%2" in script and "#SBATCH --partition=cpu" in script
    assert "launch_pickled_pipeline" in script
    one = annotate(corpus, "field:domain", tmp_path / "one", progress=False)
    merged = merge_shards(shards, tmp_path / "merged", progress=False)
    assert merged.read_bytes() == one.read_bytes()
