"""The zoo: registry, pretrained weights on disk and through a Hub (tests/hub_server.py, a local stand-in
for the Hugging Face Hub HTTP API, since the real Hub cannot be reached here), cards, variants, and the
evaluate.py / autotune / init_from command lines."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from huggingface_hub import ModelCard

import queues
import zoo
from zoo.data import DelayTask
from zoo.hub import ChecksumError, Pretrained
from zoo.registry import UnknownModelError

ROOT = Path(__file__).resolve().parents[1]
NAME = "delayed_ffn.delay_task"  # small, shipped with the package


def leaves(model):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def shipped_copy(tmp_path, name=NAME) -> Path:
    dst = tmp_path / name
    shutil.copytree(zoo.registry.get_entry(name).shipped, dst)
    return dst


def test_registry_lists_every_model_with_its_ablation_and_loads_shipped_weights():
    names = zoo.list_models()
    assert {"delayed_ffn.delay_task", "lif_network.yinyang", "delayed_ffn.nmnist"} <= set(names)
    for name in names:  # every delayed model comes with its no-delay ablation, trained by the same recipe
        entry = zoo.registry.get_entry(name)
        if not name.endswith("_nodelay"):
            twin = zoo.registry.get_entry(f"{name}_nodelay")
            assert twin.recipe == zoo.registry.no_delay_recipe(entry.recipe) and twin.ablation_of == name
    assert set(zoo.list_models(pretrained=True)) == set(names)  # all of them ship
    for name in names:  # and each was trained by the recipe its registry entry names
        recipe = json.loads((zoo.registry.get_entry(name).shipped / "config.json").read_text())["recipe"]
        assert recipe == "python train.py " + shlex.join(zoo.registry.get_entry(name).recipe), name
    assert zoo.list_models("lif_network.*") == ["lif_network.yinyang", "lif_network.yinyang_nodelay"]
    with pytest.raises(UnknownModelError, match="did you mean delayed_ffn.delay_task"):
        zoo.load("delayed_ffn.delay_tsk")

    from zoo.data import DelayTask
    test = DelayTask(examples=256, seed=777).load()
    logits, _ = jax.vmap(zoo.load(NAME))(jnp.asarray(test.spikes), jnp.asarray(test.times))
    assert float((np.asarray(logits).argmax(-1) == test.labels).mean()) > 0.95  # trained, not random
    fresh = zoo.load(NAME, pretrained=False, seed=3)
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(fresh), leaves(zoo.load(NAME))))


def test_the_ablation_of_a_fine_tuning_recipe_starts_from_the_ablation_of_its_start():
    """`delayed_conv.nmnist` fine-tunes `delayed_conv.saccades`; its no-delay twin must fine-tune the
    twin of that, whose delays are all 0, not freeze the learned delays of the model with them."""
    no_delays = zoo.registry.NO_DELAYS
    assert zoo.registry.no_delay_recipe(("model=delayed_ffn", "max_delay=8")) == ("model=delayed_ffn", "max_delay=8",
                                                                                  *no_delays)
    fine_tuning = zoo.registry.get_entry("delayed_conv.nmnist")
    assert "init_from=delayed_conv.saccades" in fine_tuning.recipe
    twin = zoo.registry.get_entry("delayed_conv.nmnist_nodelay")
    assert [o for o in twin.recipe if o.startswith("init_from=")] == ["init_from=delayed_conv.saccades_nodelay"]
    assert twin.recipe[-len(no_delays):] == no_delays
    start = zoo.hub.leaf_paths(zoo.load("delayed_conv.saccades_nodelay"))
    delays = [k for k in start if "delay" in k]
    assert delays and all(not np.asarray(start[k]).any() for k in delays)
    learned = zoo.hub.leaf_paths(zoo.load("delayed_conv.saccades"))
    assert any(np.asarray(learned[k]).any() for k in delays)
    # a start without a registered ablation of its own would make a frozen-delay twin: refused, naming it
    with pytest.raises(ValueError, match="init_from=runs/pretrained must start from runs/pretrained_nodelay"):
        zoo.registry.no_delay_recipe(("model=delayed_conv", "init_from=runs/pretrained"))
    with pytest.raises(ValueError, match="delayed_ffn.nmnist_nodelay_nodelay, which is not registered"):
        zoo.registry.no_delay_recipe(("init_from=delayed_ffn.nmnist_nodelay",))


def test_save_and_load_round_trip_with_a_card_huggingface_hub_parses(tmp_path):
    loaded = zoo.load_pretrained(NAME)
    out = tmp_path / "copy"
    Pretrained(loaded.model, {k: v for k, v in loaded.config.items() if k != "weights"}).save_pretrained(out)
    assert {"config.json", "model.safetensors", "README.md", "delay_histogram.png"} <= {p.name for p in out.iterdir()}
    again = Pretrained.load_directory(out)
    for a, b in zip(leaves(again.model), leaves(loaded.model)):
        np.testing.assert_array_equal(a, b)
    card = ModelCard.load(out / "README.md")
    assert card.data.model_name == NAME and card.data.eval_results[0].metric_type == "accuracy"
    assert "python train.py model=delayed_ffn dataset=delay_task" in card.text  # the recipe command

    shipped = ModelCard.load(zoo.registry.get_entry(NAME).card / "README.md")  # model_cards/NAME
    splits = {r.dataset_split for r in shipped.data.eval_results}
    assert any(s.startswith("test") for s in splits)
    assert "delayed_ffn.delay_task_nodelay" in shipped.text  # the ablation, side by side


def test_shipped_cards_are_generated_from_the_shipped_files(tmp_path):
    """Each card in model_cards/ is what `python -m zoo.cards NAME` writes now: none is stale, e.g. a delayed
    model's card still showing the results of an ablation retrained since (`zoo.pretrain` refreshes both)."""
    from zoo.cards import write_card

    cards = tmp_path / "model_cards"
    shutil.copytree(ROOT / "model_cards", cards)
    for name in zoo.list_models(pretrained=True):
        write_card(zoo.registry.get_entry(name).shipped, cards / name)
        assert (cards / name / "README.md").read_text() == (ROOT / "model_cards" / name / "README.md").read_text(), name


def test_corrupt_truncated_or_mismatched_weights_are_errors_not_random_weights(tmp_path):
    directory = shipped_copy(tmp_path)
    weights = directory / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ChecksumError, match="corrupt or truncated"):
        Pretrained.load_directory(directory)
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ChecksumError):
        zoo.load(str(directory))
    weights.write_bytes(data)
    config = json.loads((directory / "config.json").read_text())
    config["model"]["hidden"] = 8
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"leaf \.w_out has shape \(2, 16\), the model built from the config expects \(2, 8\)"):
        Pretrained.load_directory(directory)


def test_variants_set_the_queue_and_dtype():
    cpu = zoo.load_pretrained(NAME, variant="cpu")
    tuned = cpu.config["variants"]["cpu"]
    assert cpu.model.input.queue.__class__.__name__ == tuned["queue"]["_target_"].rsplit(".", 1)[-1]
    assert tuned["measured_on"] and tuned["accuracy"] >= tuned["reference_accuracy"] - tuned["tolerance"]
    gpu = zoo.load_pretrained(NAME, variant="gpu")
    assert gpu.config["variants"]["gpu"]["measured_on"] is None  # not measured on its hardware, and says so
    assert type(gpu.model.input.queue).__name__ == "FIFORing"
    data = DelayTask(examples=64, seed=7).load()  # the untuned variant must not lose spikes either
    _, stats = jax.vmap(gpu.model)(jnp.asarray(data.spikes), jnp.asarray(data.times))
    assert int(stats["dropped"].sum()) == 0
    tables = zoo.load_pretrained("lif_network.yinyang", variant="gpu")  # arrivals from tables: no queue to pick
    assert tables.config["variants"]["gpu"]["queue"] is None and "no queue" in tables.config["variants"]["gpu"]["note"]
    with pytest.raises(KeyError, match="no variant 'npu'; it has cpu, gpu, tpu"):
        zoo.load(NAME, variant="npu")


def _load_in_subprocess(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=300)


def test_publish_then_load_through_a_hub_with_revisions_cache_and_offline_mode(tmp_path):
    from hub_server import LocalHub

    from zoo.publish import publish
    entry = zoo.registry.get_entry(NAME)
    directory = entry.shipped
    code = ("import json, zoo, numpy as np, jax, equinox as eqx; p = zoo.load_pretrained('org/dt'{rev}); "
            "print(json.dumps({{'queue': type(p.model.input.queue).__name__, 'variant': p.config.get('variant'), "
            "'sum': float(sum(np.abs(np.asarray(x)).sum() for x in jax.tree_util.tree_leaves(eqx.filter(p.model, "
            "eqx.is_array))))}}))")
    expected = float(sum(np.abs(x).sum() for x in leaves(zoo.load(NAME))))
    home = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": "test-token"}
    with LocalHub() as hub:
        publish(directory, "org/dt", card=entry.card, endpoint=hub.url, token="test-token")
        publish(directory, "org/dt", card=entry.card, variant="gpu", endpoint=hub.url, token="test-token")
        assert ("POST", "/api/models/org/dt/branch/gpu") in hub.requests
        assert hub.files("org/dt")["model.safetensors"] == (directory / "model.safetensors").read_bytes()
        assert json.loads(hub.files("org/dt", "gpu")["config.json"])["default_variant"] == "gpu"
        assert hub.files("org/dt")["README.md"] == (entry.card / "README.md").read_bytes()
        assert {"delay_histogram.png", "training_curves.png", "evaluation.json"} <= set(hub.files("org/dt"))
        online = {**home, "HF_ENDPOINT": hub.url}
        gone = hub.url
        for rev, queue, variant in (("", None, None), (", revision='gpu'", "FIFORing", "gpu")):
            proc = _load_in_subprocess(code.format(rev=rev), online)
            assert proc.returncode == 0, proc.stderr
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            assert got["sum"] == pytest.approx(expected, rel=1e-6) and got["variant"] == variant
            if queue:
                assert got["queue"] == queue
        with pytest.raises(KeyError, match="no variant 'npu'"):
            publish(directory, "org/dt", variant="npu", endpoint=hub.url, token="test-token")
    # the Hub is gone: the cache answers, with a warning
    proc = _load_in_subprocess(code.format(rev=""), {**home, "HF_ENDPOINT": gone})
    assert proc.returncode == 0 and "using the cached snapshot" in proc.stderr, proc.stderr
    proc = _load_in_subprocess(code.format(rev=", revision='gpu'"), {**home, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    # offline with nothing cached: a clear error
    proc = _load_in_subprocess(code.format(rev=""), {**home, "HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode != 0 and "nothing is cached" in proc.stderr


def run(*args, check=True):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=900, check=check)


def test_evaluate_benchmark_card_and_autotune_on_a_copy(tmp_path):
    directory = shipped_copy(tmp_path)
    out = tmp_path / "eval.json"
    run("evaluate.py", f"model={directory}", "benchmark=true", "benchmark_queues=[fifo_ring,sorted_array]",
        "batch_sizes=[1,8]", "repeats=2", "test_examples=64", f"out={out}", "card=true", f"hydra.run.dir={tmp_path / 'e'}")
    result = json.loads(out.read_text())
    assert {"model", "dataset", "split", "accuracy", "num_samples", "benchmark"} <= result.keys()
    assert result["model"] == NAME and result["num_samples"] == 64 and result["accuracy"] > 0.9
    row = result["benchmark"][0]
    assert row["queue"] == "fifo_ring" and row["best_batch_size"] in (1, 8) and row["synops_per_sample"] > 0
    assert row["peak_memory_mb"] > 0 and row["latency_ms_p95"] >= row["latency_ms_p50"] > 0
    evaluations = json.loads((directory / "evaluation.json").read_text())
    assert evaluations[-1]["accuracy"] == result["accuracy"]
    assert f"{result['accuracy']:.4f}" in (directory / "README.md").read_text()  # the card shows the new result

    # another dataset through the dataset group (the form used for N-MNIST's withheld test split)
    out2 = tmp_path / "eval2.json"
    run("evaluate.py", f"model={directory}", "dataset=delay_task", "dataset.examples=32", "dataset.seed=5",
        f"out={out2}", f"hydra.run.dir={tmp_path / 'e2'}")
    assert json.loads(out2.read_text())["num_samples"] == 32
    bad = run("evaluate.py", f"model={directory}", "dataset=yinyang", f"hydra.run.dir={tmp_path / 'e3'}", check=False)
    assert bad.returncode != 0 and "the dataset gives channels=5, the model expects 2" in bad.stderr

    config = json.loads((directory / "config.json").read_text())
    config["variants"] = {}
    (directory / "config.json").write_text(json.dumps(config))
    run("-m", "zoo.autotune", str(directory), "--kinds", "fifo_ring", "delay_line", "--dtypes", "float32",
        "--examples", "64")
    variants = json.loads((directory / "config.json").read_text())["variants"]
    assert set(variants) == {"cpu", "gpu", "tpu"} and variants["cpu"]["measured_on"].startswith("CPU")
    assert {c["queue"] for c in variants["cpu"]["candidates"]} == {"fifo_ring", "delay_line"}
    assert variants["tpu"]["queue"]["_target_"] == "queues.SortedArray" and variants["tpu"]["measured_on"] is None
    max_delay = Pretrained.load_directory(directory).model.input.queue.max_delay
    assert variants["tpu"]["queue"]["capacity"] == variants["gpu"]["queue"]["capacity"] == \
        queues.lossless_capacity(max_delay)
    assert "not measured on its hardware" in (directory / "README.md").read_text()


def test_fine_tune_from_a_zoo_name(tmp_path):
    proc = run("train.py", f"init_from={NAME}", "trainer.epochs=1", "dataset.examples=256",
               f"hydra.run.dir={tmp_path / 'ft'}")
    assert "final validation accuracy" in proc.stdout
    history = json.loads((tmp_path / "ft" / "metrics.json").read_text())["history"]
    assert history[0]["val_accuracy"] > 0.9  # one epoch from the pretrained weights, not from scratch
    proc = run("train.py", f"init_from={NAME}", "model.hidden=8", "trainer.epochs=1", f"hydra.run.dir={tmp_path / 'x'}",
               check=False)
    assert proc.returncode != 0 and "leaf .w_out has shape (2, 16)" in proc.stderr
    proc = run("train.py", "init_from=delayed_ffn.delay_tsk", f"hydra.run.dir={tmp_path / 'y'}", check=False)
    assert proc.returncode != 0 and "did you mean delayed_ffn.delay_task" in proc.stderr
