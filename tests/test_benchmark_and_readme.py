"""The adseq benchmark runs end to end (small), and the README shows what the code measured."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import report  # noqa: E402


def test_benchmark_small_run(tmp_path):
    out = tmp_path / "results.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "queues_vs_adseq.py"), "--steps", "300",
                    "--queues", "400", "--rsnn-steps", "30", "--repeats", "1", "--remat-chunk", "5",
                    "--kinds", "fifo_ring[4],lossy_ring[4],delay_line,bitmask", "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=900)
    results = json.loads(out.read_text())
    assert {r["queue"] for r in results["poisson"]} == {"fifo_ring[4]", "lossy_ring[4]", "delay_line", "bitmask"}
    for row in results["poisson"]:
        for key in ("ours_us_per_step", "adseq_us_per_step", "ours_delivered", "adseq_delivered", "ours_dropped"):
            assert key in row, (row["queue"], key)
        assert row["ours_conserved"] and row["ours_delivered"] + row["ours_dropped"] + row["ours_pending"] == row["pushed"]
        assert row["ours_delivered"] == row["adseq_delivered"]  # same stream, same policy, same deliveries
    for row in results["rsnn_grad"]:
        assert row["ours_grad_finite"] and row["ours_remat_grad_finite"]
        assert row["ours_spikes"] == row["ours_remat_spikes"]
        for key in ("ours_us_per_step", "ours_peak_bytes"):
            assert key in row
        assert "adseq_us_per_step" in row or "adseq_error" in row
    report.report(results)  # renders


def test_no_committed_benchmark_times_a_non_finite_step():
    """Every committed result that recorded non-finite outputs or gradients carries no speed (the benchmarks
    refuse to time such a step: `queues_vs_adseq.timed`)."""
    def offenders(node, where):
        if isinstance(node, dict):
            flags = [k for k, v in node.items() if k.endswith(("grads_finite", "grad_finite")) and v is False]
            for flag in flags:
                prefix = flag[: -len("grads_finite" if flag.endswith("grads_finite") else "grad_finite")]
                yield from (f"{where}: {k}" for k in node if k.startswith(prefix) and ("per_step" in k or "ms_per" in k))
            for k, v in node.items():
                yield from offenders(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from offenders(v, f"{where}[{i}]")

    found = [o for path in sorted((ROOT / "benchmarks").rglob("*.json"))
             for o in offenders(json.loads(path.read_text()), path.relative_to(ROOT))]
    assert not found, found


def test_bad_kind_names_the_choices():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "queues_vs_adseq.py"), "--kinds", "fifo",
                           "--out", "/dev/null"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "unknown ['fifo']" in proc.stderr and "fifo_ring[4]" in proc.stderr


SECTIONS = [  # README section markers, the renderer, and the committed results it is generated from
    ("START", "END", "report", "results_cpu.json"),
    ("DELAY_START", "DELAY_END", "delay_task_report", "delay_task_cpu.json"),
    ("DENSE_START", "DENSE_END", "dense_conv_report", "delays_vs_dense_conv_cpu.json"),
    ("SPYX_START", "SPYX_END", "spyx_report", "lif_layer_vs_spyx_cpu.json"),
    ("CV_START", "CV_END", "cross_validation_report", "nmnist_cv_cpu.json"),
    ("CVS_START", "CVS_END", "cross_validation_report", "nmnist_cv_saccades_cpu.json"),
    ("CVC_START", "CVC_END", "cross_validation_report", "nmnist_cv_conv_cpu.json"),
    ("EP_START", "EP_END", "eventprop_report", "eventprop_vs_bptt_cpu.json"),
    ("CS_START", "CS_END", "crossing_search_report", "crossing_search_cpu.json"),
    ("YY_START", "YY_END", "delay_task_report", "yinyang_eventprop_cpu.json"),
    ("DTE_START", "DTE_END", "delay_task_report", "delay_task_eventprop_cpu.json"),
]


@pytest.mark.parametrize("start,end,render,results_file", SECTIONS, ids=[s[3] for s in SECTIONS])
def test_readme_section_is_generated_from_the_committed_results(start, end, render, results_file):
    readme = (ROOT / "README.md").read_text()
    start, end = getattr(report, start), getattr(report, end)
    section = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), readme, re.S)
    assert section, f"README has no {start} ... {end} section"
    results = json.loads((ROOT / "benchmarks" / results_file).read_text())
    assert section.group(1) == getattr(report, render)(results)


@pytest.mark.parametrize("start, end, render, recipe, variants", [
    ("YYV_START", "YYV_END", "variants_report", "yinyang_eventprop_cpu.json", "yinyang_eventprop_variants"),
    ("CVCV_START", "CVCV_END", "cv_variants_report", "nmnist_cv_conv_cpu.json", "nmnist_cv_conv_variants"),
    # the probes ran against the recipe before the one they led to: that run is their reference
    ("CVCP_START", "CVCP_END", "cv_probes_report", "nmnist_cv_conv_variants/max_delay_8_batch_size_32_cpu.json",
     "nmnist_cv_conv_probes"),
    # full runs and checks of the recipe before the saccade-pretrained one (batch 8 from scratch), which
    # the pretrained run replaced; the runs of the recipe before that one, which lost with delays and stopped there
    ("CVCR_START", "CVCR_END", "cv_probes_report", "nmnist_cv_conv_variants/no_pretraining_cpu.json",
     "nmnist_cv_conv_running"),
    ("CVCS_START", "CVCS_END", "cv_probes_report", "nmnist_cv_conv_variants/batch_size_16_cpu.json",
     "nmnist_cv_conv_stopped"),
    # runs varying the saccade-pretrained recipe, the current one
    ("CVCF_START", "CVCF_END", "cv_probes_report", "nmnist_cv_conv_cpu.json", "nmnist_cv_conv_fine_tuning"),
    ("FCNN_START", "FCNN_END", "frame_cnn_report", "nmnist_cv_frame_cnn_cpu.json", "nmnist_cv_frame_cnn_variants"),
])
def test_readme_variants_table_is_generated_from_the_committed_results(start, end, render, recipe, variants):
    readme = (ROOT / "README.md").read_text()
    start, end = getattr(report, start), getattr(report, end)
    section = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), readme, re.S)
    assert section, f"README has no {start} ... {end} section"
    files = [ROOT / "benchmarks" / recipe, *sorted((ROOT / "benchmarks" / variants).glob("*.json"))]
    assert len(files) > 1, f"no variant of {recipe}'s recipe committed in benchmarks/{variants}/"
    assert section.group(1) == getattr(report, render)([json.loads(f.read_text()) for f in files])


def test_variants_table_names_what_changed_and_refuses_another_measurement():
    def results(options, overrides, accs, code=None):
        runs = [{"seed": s, "val_accuracy": a, "test_accuracy": a, **({"code": code[s]} if code else {})}
                for s, a in enumerate(accs)]
        return {"command": f"python benchmarks/delay_task.py {options} --out x.json -- {overrides}",
                "runs": {"delays": runs}, "summary": {"delays": {"seeds": len(runs)}}}

    recipe = results("--seeds 2 --test-examples 100", "a=1 b=2", [0.5, 0.7])
    variant = results("--seeds 2 --jobs 2 --test-examples 100", "a=1 c=3", [0.9, 0.9])
    table = report.variants_report([recipe, variant]).splitlines()
    assert table[-2] == "| (the recipe) | 60.00 % | 60.00 ± 10.00 % | 0, 1 | not recorded |"
    assert table[-1] == "| c=3 (without b=2) | 90.00 % | 90.00 ± 0.00 % | 0, 1 | not recorded |"
    # the same recipe rerun by other code is a row of its own that says which commits ran it
    rerun = results("--seeds 2 --test-examples 100", "a=1 b=2", [0.6, 0.8], ["0123456789ab", "fedcba987654+changes"])
    assert report.variants_report([recipe, rerun]).splitlines()[-1] == \
        "| (the recipe, other code) | 70.00 % | 70.00 ± 10.00 % | 0, 1 | 0123456, fedcba9+changes |"
    assert report.variants_report([rerun, recipe]).splitlines()[-2:] == [
        "| (the recipe) | 70.00 % | 70.00 ± 10.00 % | 0, 1 | 0123456, fedcba9+changes |",
        "| (the recipe, other code) | 60.00 % | 60.00 ± 10.00 % | 0, 1 | not recorded |"]
    # ... and so does a variant rerun by other code, after the row of its first run
    again = results("--seeds 2 --test-examples 100", "a=1 c=3", [0.8, 0.8], ["0123456789ab", "0123456789ab"])
    assert report.variants_report([recipe, variant, again]).splitlines()[-2:] == [
        table[-1], "| c=3 (without b=2) (other code) | 80.00 % | 80.00 ± 0.00 % | 0, 1 | 0123456 |"]
    assert report.variants_report([recipe, variant, {**again, "runs": variant["runs"]}]).splitlines()[-1] == table[-1]
    with pytest.raises(ValueError, match="is not measured as"):
        report.variants_report([recipe, results("--seeds 2 --test-examples 50", "a=1", [0.9, 0.9])])
    # which models ran does not change how each is measured; the row's model must be there
    only = results("--seeds 2 --ablations delays --test-examples 100", "a=1 c=3", [0.9, 0.9])
    assert report.variants_report([recipe, only]).splitlines()[-1] == table[-1]
    with pytest.raises(ValueError, match="is not measured as"):
        report.variants_report([recipe, results("--seeds 2 --ablations delays --test-examples 50", "a=1", [0.9, 0.9])])
    with pytest.raises(ValueError, match="no no_delays runs in the results of"):
        report.variants_report([recipe, variant], ablation="no_delays")


def test_cross_validation_variants_table_compares_the_same_folds():
    def results(options, overrides, accs, folds=2):
        summary = {name: {"test_accuracy_mean": statistics.mean(a), "test_accuracy_std": statistics.pstdev(a)}
                   for name, a in accs.items()}
        return {"command": f"python benchmarks/cross_validate.py {options} --out x.json -- {overrides}", "folds": folds,
                "runs": {name: [{"fold": i, "test_accuracy": a[i]} for i in range(folds)] for name, a in accs.items()},
                "summary": summary}

    recipe = results("--folds 2", "a=1 b=2", {"delays": [0.5, 0.7], "no_delays": [0.4, 0.4]})
    variant = results("--folds 2 --jobs 2", "a=1 c=3", {"delays": [0.9, 0.9], "no_delays": [0.3, 0.5]})
    variant["runs"]["delays"][0]["code"] = variant["runs"]["no_delays"][1]["code"] = "0123456789ab"
    table = report.cv_variants_report([recipe, variant]).splitlines()
    # the variant's delays minus the recipe's on each fold: +40 and +20 points
    assert table[-3:] == ["|---|---:|---:|---:|---|",
                          "| (the recipe) | 60.00 ± 10.00 % | 40.00 ± 0.00 % | – | not recorded |",
                          "| c=3 (without b=2) | 90.00 ± 0.00 % | 40.00 ± 10.00 % | +30.00 ± 10.00, ahead on 2 of 2, "
                          "level on 0, behind on 0 | 0123456, not recorded |"]
    assert table[-4] == "| variant | delays | no delays | delays, paired with the recipe's | code |"
    rerun = results("--folds 2", "a=1 b=2", {"delays": [0.4, 0.9], "no_delays": [0.3, 0.5]})
    rerun["runs"]["delays"][0]["code"] = "0123456789ab"
    assert report.cv_variants_report([recipe, rerun]).splitlines()[-1] == \
        "| (the recipe, other code) | 65.00 ± 25.00 % | 40.00 ± 10.00 % | +5.00 ± 15.00, ahead on 1 of 2, level on 0, " \
        "behind on 1 | 0123456, not recorded |"
    elsewhere = results("--folds 2", "a=1 c=3", {"delays": [0.9, 0.9], "no_delays": [0.3, 0.5]})
    elsewhere["runs"]["delays"][1]["fold"] = 5
    with pytest.raises(ValueError, match=r"the variant ran folds \[0, 5\], the recipe folds \[0, 1\]: not paired"):
        report.cv_variants_report([recipe, elsewhere])
    with pytest.raises(ValueError, match="is not measured as"):
        report.cv_variants_report([recipe, results("--folds 3", "a=1", {"delays": [1] * 3, "no_delays": [1] * 3}, 3)])
    # an ablation's own override is a change of the variant (of that model's runs), shown as ABLATION:OVERRIDE
    own = results("--folds 2 --ablation-override no_delays:init_from=x", "a=1 b=2 init_from=y",
                  {"delays": [0.9, 0.9], "no_delays": [0.3, 0.5]})
    assert report.cv_variants_report([recipe, own]).splitlines()[-1].startswith(
        "| init_from=y no_delays:init_from=x | 90.00 ± 0.00 % | 40.00 ± 10.00 % |")
    assert report.cv_variants_report([own, recipe]).splitlines()[-1].startswith(
        "| (without init_from=y no_delays:init_from=x) | 60.00 ± 10.00 % |")
    with pytest.raises(ValueError, match="needs the recipe's models"):
        report.cv_variants_report([recipe, results("--folds 2", "a=1", {"delays": [1, 1]})])
    with pytest.raises(ValueError, match="incomplete"):
        unfinished = results("--folds 2", "a=1", {"delays": [1, 1], "no_delays": [1, 1]})
        unfinished["runs"]["no_delays"].pop()
        report.cv_variants_report([recipe, unfinished])


def test_cross_validation_probes_table_sets_each_probe_beside_the_recipe_on_its_fold():
    def run(fold, test, train, seconds=2.0, code=None):
        return {"fold": fold, "test_accuracy": test, "epoch_seconds": seconds, "history": [{"train_accuracy": train}],
                **({"code": code} if code else {})}

    recipe = {"command": "python benchmarks/cross_validate.py --folds 2 --jobs 2 --out x.json -- a=1 b=2",
              "folds": 2, "examples": 400, "summary": {"delays": {"test_accuracy_mean": 0.9}, "no_delays": {}},
              "runs": {"delays": [run(0, 0.9, 0.95), run(1, 0.8, 0.97)], "no_delays": [run(0, 0.5, 0.6), run(1, 0.6, 0.7)]}}
    probe = {"command": "python benchmarks/cross_validate.py --folds 2 --only-folds 1 --ablations delays --out y.json "
                        "-- a=1 b=3", "folds": 2, "examples": 400, "summary": {"delays": {}},
             "runs": {"delays": [run(1, 0.85, 0.99, 3.25, "0123456789ab+changes")]}}
    table = report.cv_probes_report([recipe, probe]).splitlines()
    assert "(200 recordings: one probe's sampling error is about 2.1 points at the reference's delays accuracy)" in table[0]
    assert table[-1] == "| b=3 | delays | 1 | 85.00 % | 80.00 % | 99.00 % | 97.00 % | 3.2 | 0123456+changes |"
    with pytest.raises(ValueError, match="is not measured as"):  # other folds: not comparable
        report.cv_probes_report([recipe, {**probe, "command": probe["command"].replace("--folds 2", "--folds 2 --seed 1")}])
    # a probe not finished shows the folds it has and says it is partial: --only-folds 0 1 with one fold in,
    assert report.cv_probes_report([recipe, {**probe, "command": probe["command"].replace(
        "--only-folds 1", "--only-folds 0 1")}]).splitlines()[-1] == table[-1].replace("b=3", "b=3 (partial: 1 of 2 folds)")
    # its last fold in but no summary yet (written as the command ends),
    assert report.cv_probes_report([recipe, {**probe, "summary": {}}]).splitlines()[-1] == \
        table[-1].replace("b=3", "b=3 (partial: 1 of 1 folds)")
    # a full run (no --only-folds) of both models with its first delays fold in
    running = {**probe, "command": probe["command"].replace(" --only-folds 1 --ablations delays", ""), "summary": {},
               "runs": {"delays": probe["runs"]["delays"], "no_delays": []}}
    assert report.cv_probes_report([recipe, running]).splitlines()[-1] == \
        table[-1].replace("b=3", "b=3 (partial: 1 of 4 folds)")
    # a model with every fold in gets its mean and its difference from the reference's, paired by fold
    both = {**running, "runs": {"delays": [run(0, 0.95, 1.0), *probe["runs"]["delays"]], "no_delays": []}}
    assert report.cv_probes_report([recipe, both]).splitlines()[-2:] == [
        "", "b=3 (partial: 2 of 4 folds), delays: 90.00 ± 5.00 % over its 2 folds, the reference's 85.00 ± 5.00 %; "
        "minus the reference's fold by fold, in points: +5.00 ± 0.00, ahead on 2 of 2, level on 0, behind on 0."]
    assert "over its" not in report.cv_probes_report([recipe, running])  # one fold of two: no mean yet
    # both models on every fold: what the delays add, paired by fold, beside what they add to the reference
    ended = {**both, "summary": {"delays": {}, "no_delays": {}},
             "runs": {**both["runs"], "no_delays": [run(0, 0.7, 0.9), run(1, 0.6, 0.8)]}}
    assert report.cv_probes_report([recipe, ended]).splitlines()[-1] == (
        "b=3, delays minus no delays fold by fold, in points: +25.00 ± 0.00, ahead on 2 of 2, level on 0, behind "
        "on 0 (the reference's: +30.00 ± 10.00, ahead on 2 of 2, level on 0, behind on 0).")
    assert "delays minus no delays" not in report.cv_probes_report([recipe, both])  # no delay-free folds yet
    with pytest.raises(ValueError, match="incomplete"):  # the recipe itself must be complete
        report.cv_probes_report([{**recipe, "summary": {}}, probe])


def test_readme_zoo_table_is_generated_from_the_shipped_models():
    readme = (ROOT / "README.md").read_text()
    section = re.search(re.escape(report.ZOO_START) + r"\n(.*?)\n" + re.escape(report.ZOO_END), readme, re.S)
    assert section, "README has no zoo table section"
    assert section.group(1) == report.zoo_report(str(ROOT / "zoo" / "pretrained"))


def test_readme_queue_example_runs():
    readme = (ROOT / "README.md").read_text()
    example = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    proc = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "delivered: 4.0 dropped: 0" in proc.stdout


def test_readme_scheduled_example_runs():
    readme = (ROOT / "README.md").read_text()
    [example] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "queues.Scheduled" in b]
    proc = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "steps x post: (100, 4) dropped: 0" in proc.stdout and "(8, 4)" in proc.stdout


def test_dense_conv_benchmark_small_run(tmp_path):
    out = tmp_path / "dense.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "delays_vs_dense_conv.py"), "--max-delays", "16",
                    "--neurons", "8", "--batch", "2", "--extra-steps", "8", "--repeats", "1", "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    results = json.loads(out.read_text())
    [row] = results["rows"]
    assert row["dense"]["grads_finite"] and all(r["grads_finite"] for r in row["ours"].values())
    assert "delay_line" in row["ours"] and len(row["ours"]) == 3
    assert any(name.startswith("scheduled[") for name in row["ours"])
    # the lossless queue and the dense layer see the same spikes: spike counts of the same order
    assert row["ours"]["delay_line"]["loss"] > 0 and row["dense"]["loss"] > 0
    report.dense_conv_report(results)


def test_spyx_benchmark_small_run_same_network(tmp_path):
    out = tmp_path / "spyx.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "lif_layer_vs_spyx.py"), "--neurons", "64",
                    "--batch", "2", "--steps", "40", "--repeats", "1", "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    rows = json.loads(out.read_text())["rows"]
    assert rows["spyx"]["spikes"] == rows["ours"]["spikes"] > 0  # the same network, computed both ways
    assert all(r["grads_finite"] for r in rows.values())


def test_cross_validation_tests_every_example_once(tmp_path):
    out = tmp_path / "cv.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--folds", "2", "--out", str(out),
                    "--ablation-override", "no_delays:trainer.epochs=1",
                    "--", "dataset.examples=64", "trainer.epochs=2", "model.hidden=4", "trainer.batch_size=16"],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    results = json.loads(out.read_text())
    assert set(results["summary"]) == {"delays", "no_delays"} and results["examples"] == 64
    for runs in results["runs"].values():
        assert sum(r["test_examples"] for r in runs) == 64 and all(r["train_examples"] == 32 for r in runs)
        assert all(0 <= r["test_accuracy"] <= 1 and r["samples_per_second"] > 0 for r in runs)
    assert results["summary"]["no_delays"]["overrides"] == ["model.init_delay=0", "optim.lr_delays=0", "trainer.epochs=1"]
    assert [len(r["history"]) for r in results["runs"]["no_delays"]] == [1, 1]  # the ablation's own override
    assert [len(r["history"]) for r in results["runs"]["delays"]] == [2, 2]  # ... and only the ablation's
    for name, runs in results["runs"].items():  # the test's own dropped spikes are counted beside training's
        assert all(isinstance(r["test_dropped_spikes"], int) and r["test_dropped_spikes"] >= 0 for r in runs)
        assert f"| {report._dropped(runs)} |" in report.cross_validation_report(results)
    assert "not recorded" not in report.cross_validation_report(results)
    # one fold alone (a probe) is the same run as in the full cross-validation, and not a table
    one = tmp_path / "fold1.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--folds", "2", "--only-folds", "1",
                    "--ablations", "delays", "--out", str(one), "--", "dataset.examples=64", "trainer.epochs=2",
                    "model.hidden=4", "trainer.batch_size=16"], check=True, cwd=ROOT, capture_output=True, text=True,
                   timeout=600)
    alone = json.loads(one.read_text())

    def untimed(run):  # timings differ; so may `code`, if a tracked file changes between the runs
        return {k: v for k, v in run.items() if "second" not in k and k != "code"} | {
            "history": [{k: v for k, v in h.items() if k != "seconds"} for h in run["history"]]}

    assert [r["fold"] for r in results["runs"]["delays"]] == [0, 1]
    assert [untimed(r) for r in alone["runs"]["delays"]] == [untimed(results["runs"]["delays"][1])]
    with pytest.raises(ValueError, match=r"incomplete \(unfinished: \['delays'\]\)"):
        report.cross_validation_report(alone)
    # `seed=` in the recipe reseeds the model (weights, data order) on the same folds; --seed moves the folds too
    def fold1(*options, recipe=("dataset.examples=64", "trainer.epochs=2", "model.hidden=4", "trainer.batch_size=16")):
        path = tmp_path / f"seed{len(list(tmp_path.iterdir()))}.json"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--folds", "2", "--only-folds",
                        "1", "--ablations", "delays", "--out", str(path), *options, "--", *recipe],
                       check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
        return untimed(json.loads(path.read_text())["runs"]["delays"][0])

    same = fold1(recipe=("dataset.examples=64", "trainer.epochs=2", "model.hidden=4", "trainer.batch_size=16", "seed=0"))
    assert same == untimed(alone["runs"]["delays"][0])  # seed=0 is --seed 0's own model seed
    reseeded = fold1(recipe=("dataset.examples=64", "trainer.epochs=2", "model.hidden=4", "trainer.batch_size=16", "seed=1"))
    refolded = fold1("--seed", "1")  # model seed 1 too, but other folds
    assert reseeded["history"] != same["history"] and reseeded["history"] != refolded["history"]
    # two folds at a time, each in its own spawned process: the same runs, summaries and results file
    two = tmp_path / "jobs2.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--folds", "2", "--jobs", "2",
                    "--out", str(two), "--ablation-override", "no_delays:trainer.epochs=1", "--", "dataset.examples=64",
                    "trainer.epochs=2", "model.hidden=4", "trainer.batch_size=16"],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    parallel = json.loads(two.read_text())
    for name in ("delays", "no_delays"):
        assert [untimed(r) for r in parallel["runs"][name]] == [untimed(r) for r in results["runs"][name]]
        assert parallel["summary"][name]["test_accuracy_mean"] == results["summary"][name]["test_accuracy_mean"]
    assert "--jobs 2" in parallel["command"]
    report.cross_validation_report(parallel)
    # what an interrupted run leaves (saved after every fold) is refused, not published with rows missing
    results["runs"]["no_delays"].pop()
    del results["summary"]["no_delays"]
    with pytest.raises(ValueError, match=r"incomplete \(unfinished: \['no_delays'\]\)"):
        report.cross_validation_report(results)
    # --resume keeps the folds such a file holds (timings and all: not trained again) and trains the missing one
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(results))
    recipe = ["--", "dataset.examples=64", "trainer.epochs=2", "model.hidden=4", "trainer.batch_size=16"]
    command = [sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--folds", "2", "--out", str(partial),
               "--ablation-override", "no_delays:trainer.epochs=1", "--resume"]
    subprocess.run(command + recipe, check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    resumed = json.loads(partial.read_text())
    assert resumed["runs"]["delays"] == results["runs"]["delays"]
    assert resumed["runs"]["no_delays"][0] == results["runs"]["no_delays"][0]
    assert [untimed(r) for r in resumed["runs"]["no_delays"]] == [untimed(r) for r in parallel["runs"]["no_delays"]]
    assert resumed["summary"]["no_delays"]["test_accuracy_mean"] == parallel["summary"]["no_delays"]["test_accuracy_mean"]
    assert "--resume" not in resumed["command"]
    assert [r["xla_flags"] for rs in resumed["runs"].values() for r in rs] == [os.environ.get("XLA_FLAGS", "")] * 4
    report.cross_validation_report(resumed)
    # ... and refuses a file measured otherwise, or holding folds this command would not train
    proc = subprocess.run(command + recipe[:-1] + ["trainer.batch_size=8"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode != 0 and "was measured with overrides" in proc.stderr
    proc = subprocess.run(command + ["--only-folds", "0"] + recipe, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "holds runs this command does not make (delays fold 1, no_delays fold 1)" in proc.stderr
    # an ablation's own override changes only its runs: the delayed model's fold alone (`alone`, measured without
    # one) is completed by a command giving the ablation its own, the same run as in the full cross-validation ...
    def resume(path, *options):
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--folds", "2",
                               "--out", str(path), "--resume", *options, *recipe], cwd=ROOT, capture_output=True,
                              text=True, timeout=600)

    completing = tmp_path / "completing.json"
    completing.write_text(json.dumps(alone))
    proc = resume(completing, "--only-folds", "1", "--ablation-override", "no_delays:trainer.epochs=1")
    assert proc.returncode == 0, proc.stderr
    completed = json.loads(completing.read_text())
    assert completed["runs"]["delays"] == alone["runs"]["delays"]
    assert [untimed(r) for r in completed["runs"]["no_delays"]] == [untimed(parallel["runs"]["no_delays"][1])]
    # ... but a model whose runs the file holds keeps the overrides it was measured with
    proc = resume(completing, "--only-folds", "1", "--ablation-override", "delays:trainer.epochs=1")
    assert proc.returncode != 0 and "holds delays runs measured with --ablation-override [], not" in proc.stderr
    proc = resume(partial)
    assert proc.returncode != 0 and "holds no_delays runs measured with --ablation-override ['trainer.epochs=1'], not []" \
        in proc.stderr


def test_cross_validation_table_counts_dropped_spikes_and_never_guesses_a_missing_count():
    runs = [{"history": [{"dropped_spikes": 3}, {"dropped_spikes": 0}], "test_dropped_spikes": 1},
            {"history": [{"dropped_spikes": 2}], "test_dropped_spikes": 0}]
    assert report._dropped(runs) == "5 / 1"
    del runs[1]["test_dropped_spikes"]  # a run made before the test's count was kept
    assert report._dropped(runs) == "5 / not recorded"
    del runs[0]["history"][1]["dropped_spikes"]
    assert report._dropped(runs) == "not recorded / not recorded"
    del runs[0]["history"]
    assert report._dropped(runs) == "not recorded / not recorded"


def test_the_conv_zoo_model_is_trained_by_the_cross_validated_recipe():
    """The README says the 5-fold conv recipe ships as `delayed_conv.nmnist` (and its no-delay arm as its
    twin): one recipe, not two that drift. The cross-validation started from two local pretraining runs,
    which ship as `delayed_conv.saccades{,_nodelay}`: each is the run whose record is committed in
    benchmarks/pretraining/ (the same recipe and the same training history, epoch by epoch)."""
    import shlex

    import yaml

    import zoo
    from recipes import ABLATIONS
    runs = {"runs/saccades_conv": "delayed_conv.saccades", "runs/saccades_conv_nodelay": "delayed_conv.saccades_nodelay"}
    for run, name in runs.items():
        record = ROOT / "benchmarks" / "pretraining" / run.split("/")[1]
        entry = zoo.registry.get_entry(name)
        assert list(entry.recipe) == yaml.safe_load((record / "overrides.yaml").read_text())
        shipped = json.loads((entry.shipped / "config.json").read_text())["training"]
        assert shipped["history"] == json.loads((record / "metrics.json").read_text())["history"]

    def as_shipped(overrides):  # Hydra's meaning: the last value of each key, with the runs' zoo names
        values = dict(o.split("=", 1) for o in overrides)
        return {k: runs.get(v, v) if k == "init_from" else v for k, v in values.items()}

    command = json.loads((ROOT / "benchmarks" / "nmnist_cv_conv_cpu.json").read_text())["command"]
    recipe = shlex.split(command.split(" -- ", 1)[1])
    assert list(zoo.registry.get_entry("delayed_conv.nmnist").recipe) == [
        f"init_from={runs[o.split('=', 1)[1]]}" if o.startswith("init_from=") else o for o in recipe]
    no_delays = recipe + ABLATIONS["no_delays"] + [o.split(":", 1)[1] for o in report._ablation_overrides(command)]
    assert as_shipped(zoo.registry.get_entry("delayed_conv.nmnist_nodelay").recipe) == as_shipped(no_delays)


def test_cross_validation_compares_delays_with_no_delays_fold_by_fold():
    delays = [{"fold": f, "test_accuracy": a} for f, a in enumerate([0.95, 0.94, 0.90])]
    no_delays = [{"fold": f, "test_accuracy": a} for f, a in reversed(list(enumerate([0.95, 0.92, 0.93])))]
    assert report._paired(delays, no_delays) == (  # differences 0, +2, -3 points, matched by fold not by order
        "Paired by fold, delays minus no delays, in points: -0.33 ± 2.05, ahead on 1 of 3, level on 1, behind on 1.")
    with pytest.raises(ValueError, match=r"delays ran folds \[0, 1, 2\], no delays folds \[1, 2\]: not paired"):
        report._paired(delays, no_delays[:2])


def test_seed_benchmark_gives_the_same_runs_in_parallel_processes(tmp_path):
    """`delay_task.py --jobs 2` trains in spawned processes and records exactly what one process does."""
    results, small = {}, ["dataset.examples=64", "trainer.epochs=2", "model.hidden=4", "trainer.batch_size=16"]
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}.json"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "delay_task.py"), "--seeds", "2", "--test-examples",
                        "64", "--jobs", str(jobs), "--out", str(out), "--", "dataset.examples=64", "trainer.epochs=2",
                        "model.hidden=4", "trainer.batch_size=16"],
                       check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
        results[jobs] = json.loads(out.read_text())
    for name in ("delays", "no_delays"):
        one, two = ([{k: v for k, v in r.items() if k != "train_seconds"} for r in results[jobs]["runs"][name]]
                    for jobs in (1, 2))
        assert [r["seed"] for r in two] == [0, 1] and two == one
        assert all(0 <= r["train_accuracy"] <= 1 and 0 <= r["val_accuracy"] <= 1 for r in two)
        if (ROOT / ".git").exists():  # each run names the commit it ran from
            head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                  text=True, check=True).stdout.strip()
            assert all(r["code"] in (head, head + "+changes") for r in two)
        assert all(r["xla_flags"] == os.environ.get("XLA_FLAGS", "") for r in two)  # and the flags it ran under
        assert results[2]["summary"][name] == results[1]["summary"][name]
    report.delay_task_report(results[2])
    out = tmp_path / "subset.json"  # one seed of one model: the same run as in the full benchmark
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "delay_task.py"), "--first-seed", "1", "--seeds", "1",
                    "--ablations", "delays", "--test-examples", "64", "--out", str(out), "--", "dataset.examples=64",
                    "trainer.epochs=2", "model.hidden=4", "trainer.batch_size=16"],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    subset = json.loads(out.read_text())
    assert list(subset["runs"]) == ["delays"] and list(subset["summary"]) == ["delays"]
    assert [{k: v for k, v in r.items() if k != "train_seconds"} for r in subset["runs"]["delays"]] == [
        {k: v for k, v in results[1]["runs"]["delays"][1].items() if k != "train_seconds"}]
    resumed = tmp_path / "resumed.json"  # interrupted after the delay runs, resumed: only the rest is trained
    shutil.copy(tmp_path / "jobs1.json", resumed)
    partial = json.loads(resumed.read_text())
    del partial["runs"]["no_delays"][1:], partial["summary"]
    resumed.write_text(json.dumps(partial))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "delay_task.py"), "--resume", "--seeds", "2",
                           "--test-examples", "64", "--out", str(resumed), "--", *small],
                          check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.stdout.count('{"seed": ') == 1  # one run trained: no_delays seed 1
    resumed = json.loads(resumed.read_text())
    assert resumed["runs"]["delays"] == results[1]["runs"]["delays"]  # carried over, train_seconds and all
    assert resumed["runs"]["no_delays"][0] == results[1]["runs"]["no_delays"][0]
    assert resumed["summary"] == results[1]["summary"] and "--resume" not in resumed["command"]
    for bad, complaint in [(["--seeds", "1"], "holds runs this command does not make (delays seed 1, no_delays seed 1)"),
                           (["--seeds", "2", "--", *small[:-1], "trainer.batch_size=8"], "was measured with overrides")]:
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "delay_task.py"), "--resume", "--test-examples",
                               "64", "--out", str(tmp_path / "jobs1.json"), *bad] + (["--", *small] if "--" not in bad
                                                                                   else []),
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and complaint in proc.stderr, proc.stderr
    # ... nor continues them under other XLA flags: on CPU they set the threading, so the summation order
    other = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "delay_task.py"), "--resume", "--seeds", "2",
                           "--test-examples", "64", "--out", str(tmp_path / "jobs1.json"), "--", *small],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "XLA_FLAGS": other})
    assert proc.returncode == 2 and f"this process has XLA_FLAGS={other!r}" in proc.stderr, proc.stderr
    results[2]["runs"]["no_delays"].pop()  # what an interrupted run leaves is refused
    del results[2]["summary"]["no_delays"]
    with pytest.raises(ValueError, match=r"incomplete \(unfinished: \['no_delays'\]\)"):
        report.delay_task_report(results[2])


def test_seed_benchmark_reuses_only_runs_whose_resolved_config_is_unchanged(tmp_path):
    """After a change of the delays' learning rate the no-delay runs (which set it to 0) are the same runs:
    `--reuse` carries them over and says so; after any other change it carries nothing."""
    small = ["dataset.examples=64", "trainer.epochs=2", "model.hidden=4", "trainer.batch_size=16"]

    def bench(out, *args):
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "delay_task.py"), "--seeds", "1",
                               "--test-examples", "64", "--out", str(tmp_path / out), *args], check=True, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        return json.loads((tmp_path / out).read_text()), proc.stdout.count('{"seed": ')

    before, _ = bench("before.json", "--", *small, "optim.lr_delays=0.5")
    after, trained = bench("after.json", "--reuse", str(tmp_path / "before.json"), "--", *small, "optim.lr_delays=0.2")
    assert trained == 1 and after["runs"]["no_delays"] == before["runs"]["no_delays"]
    assert after["reused"] == {"command": before["command"], "runs": {"no_delays": [0]}}
    assert "--reuse" not in after["command"] and "optim.lr_delays=0.2" in after["command"]
    assert f"were measured by `{before['command']}`" in report.delay_task_report(after)
    # what reuse stands for: trained afresh under the new command, the no-delay run is the same to the bit
    fresh, _ = bench("fresh.json", "--ablations", "no_delays", "--", *small, "optim.lr_delays=0.2")
    assert ([{k: v for k, v in r.items() if k != "train_seconds"} for r in fresh["runs"]["no_delays"]]
            == [{k: v for k, v in r.items() if k != "train_seconds"} for r in before["runs"]["no_delays"]])
    other, trained = bench("other.json", "--reuse", str(tmp_path / "before.json"), "--", *small[:-1],
                           "trainer.batch_size=8", "optim.lr_delays=0.5")
    assert trained == 2 and "reused" not in other
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "delay_task.py"), "--seeds", "1",
                           "--test-examples", "64", "--out", "/dev/null", "--reuse", str(tmp_path / "after.json"), "--", *small],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "itself reused runs of" in proc.stderr, proc.stderr


@pytest.mark.parametrize("bad", [["--seeds", "0"], ["--first-seed", "-1"], ["--jobs", "0"], ["--ablations", "nodelay"]])
def test_seed_benchmark_refuses_bad_arguments(bad):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "delay_task.py"), "--out", "/dev/null", *bad],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and f"{bad[0]} " in proc.stderr and bad[1] in proc.stderr, proc.stderr


def test_cross_validation_tests_the_shift_averaged_network_beside_the_network_alone(tmp_path):
    """``--test-time-shift 1`` trains exactly what the command without it trains, then tests that network
    averaged over its 9 shifted views (`ShiftAveraged`), keeping the network's own accuracy beside it; the
    probes table names it as the change, and a file of one is never resumed as the other."""
    def cross_validate(out, *options):
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--folds", "2",
                               "--only-folds", "0", "--ablations", "delays", "--out", str(out), *options, "--",
                               "model=delayed_conv", "dataset=saccades", "dataset.examples=40", "model.hidden=8",
                               "model.features=[4]", "trainer.epochs=2", "trainer.batch_size=8", "max_delay=4",
                               f"dataset.cache_dir={tmp_path / 'cache'}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)

    cross_validate(tmp_path / "alone.json").check_returncode()
    cross_validate(tmp_path / "shifted.json", "--test-time-shift", "1").check_returncode()
    alone, shifted = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("alone", "shifted"))
    one, averaged = alone["runs"]["delays"][0], shifted["runs"]["delays"][0]
    assert "single_view_test_accuracy" not in one
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in averaged["history"]] == [
        {k: v for k, v in h.items() if k != "seconds"} for h in one["history"]]  # the same training
    assert averaged["single_view_test_accuracy"] == one["test_accuracy"]
    assert averaged["test_dropped_spikes"] >= one["test_dropped_spikes"]  # nine passes, every drop counted
    table = report.cv_probes_report([alone, shifted])
    assert "| --test-time-shift 1 | delays | 0 |" in table
    # a file with every fold: its mean, and its network's own beside it
    whole = {**shifted, "command": shifted["command"].replace(" --only-folds 0", "").replace("--folds 2", "--folds 1"),
             "folds": 1}
    reference = {**alone, "command": alone["command"].replace(" --only-folds 0", "").replace("--folds 2", "--folds 1"),
                 "folds": 1}
    line = report.cv_probes_report([reference, whole]).splitlines()[-1]
    assert line.startswith("--test-time-shift 1, delays: ") and (
        f"(its network alone, without the shifted views: {100 * one['test_accuracy']:.2f} ± 0.00 %)" in line)
    refused = cross_validate(tmp_path / "shifted.json", "--resume")
    assert refused.returncode == 2 and "was measured with --test-time-shift 1, not 0" in refused.stderr, refused.stderr
    bad = cross_validate(tmp_path / "bad.json", "--test-time-shift", "-1")
    assert bad.returncode == 2 and "--test-time-shift -1: must be a non-negative number of pixels" in bad.stderr


def test_cross_validation_tests_an_ensemble_of_two_seeds_beside_the_network_alone(tmp_path):
    """``--save-models DIR`` keeps each fold's network; ``--ensemble-with FILE`` trains what the command
    without it trains, then tests that network with FILE's network of the fold (`Ensemble`), keeping the
    network's own accuracy beside it. A partner that is not the same recipe from another seed, or that kept
    no network, is refused by name; the probes table names the partner file as the change."""
    def cross_validate(out, *options, recipe=()):
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--folds", "2",
                               "--only-folds", "0", "--ablations", "delays", "--out", str(out), *options, "--",
                               "model=delayed_conv", "dataset=saccades", "dataset.examples=40", "model.hidden=8",
                               "model.features=[4]", "trainer.epochs=2", "trainer.batch_size=8", "max_delay=4",
                               f"dataset.cache_dir={tmp_path / 'cache'}", *recipe],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)

    first, second, pair = (tmp_path / f"{n}.json" for n in ("seed0", "seed1", "pair"))
    cross_validate(first, "--save-models", str(tmp_path / "models")).check_returncode()
    cross_validate(second, recipe=["seed=1"]).check_returncode()
    cross_validate(pair, "--ensemble-with", str(first), "--save-models", str(tmp_path / "pair"),
                   recipe=["seed=1"]).check_returncode()
    seed0, seed1, ensemble = (json.loads(f.read_text())["runs"]["delays"][0] for f in (first, second, pair))
    assert seed0["model_file"] == str(tmp_path / "models" / "delays_fold0.eqx") and os.path.isfile(seed0["model_file"])
    assert not os.path.exists(seed0["model_file"] + ".tmp")
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in ensemble["history"]] == [
        {k: v for k, v in h.items() if k != "seconds"} for h in seed1["history"]]  # the same training
    assert ensemble["single_network_test_accuracy"] == seed1["test_accuracy"]
    assert ensemble["ensemble_partner_file"] == seed0["model_file"]
    assert ensemble["test_dropped_spikes"] >= seed1["test_dropped_spikes"]  # both networks' drops counted
    # each file holds its run's network, and the ensemble's accuracy is the two networks' mean probability's
    import equinox as eqx
    import jax
    import numpy as np
    from hydra.utils import instantiate
    from recipes import compose_recipe, initial_model
    cfg = compose_recipe(["model=delayed_conv", "dataset=saccades", "dataset.examples=40", "model.hidden=8",
                          "model.features=[4]", "max_delay=4", f"dataset.cache_dir={tmp_path / 'cache'}"])
    train, test = instantiate(cfg.dataset).load().folds(2, seed=0)[0]
    skeleton = initial_model(cfg, train, 0, "delays")
    p0, p1 = (np.asarray(jax.nn.softmax(jax.vmap(eqx.tree_deserialise_leaves(f, skeleton))(test.spikes, test.times)[0]))
              for f in (seed0["model_file"], ensemble["model_file"]))
    assert float((p0.argmax(-1) == test.labels).mean()) == seed0["test_accuracy"]
    assert float((p1.argmax(-1) == test.labels).mean()) == seed1["test_accuracy"]
    assert float(((p0 + p1).argmax(-1) == test.labels).mean()) == ensemble["test_accuracy"]
    table = report.cv_probes_report([json.loads(first.read_text()), json.loads(pair.read_text())])
    assert f"| seed=1 --ensemble-with {first} | delays | 0 |" in table
    refusals = {
        "same seed": (cross_validate(tmp_path / "x.json", "--ensemble-with", str(first)),
                      "networks have this command's seed"),
        "other recipe": (cross_validate(tmp_path / "x.json", "--ensemble-with", str(first),
                                        recipe=["seed=1", "model.hidden=9"]), "differs by recipe (other than seed=)"),
        "no network": (cross_validate(tmp_path / "x.json", "--ensemble-with", str(second), recipe=["seed=2"]),
                       "no saved delays network for fold 0"),
        "with shifts": (cross_validate(tmp_path / "x.json", "--ensemble-with", str(first), "--test-time-shift", "1",
                                       recipe=["seed=1"]), "--test-time-shift and --ensemble-with: give one")}
    for what, (proc, message) in refusals.items():
        assert proc.returncode == 2 and message in proc.stderr, (what, proc.stderr)


def test_fold_differences_that_tie_read_as_a_tie():
    """A paired mean that is zero up to rounding (e.g. +0.015 - 0.005 - 0.01 in float) is no loss: +0.00."""
    import numpy as np

    d = np.array([0.015, 0.0, -0.005, -0.01, 0.0])
    assert d.mean() != 0 and report._ahead(d).startswith("+0.00 ± ") and "level on 2, behind on 2" in report._ahead(d)


def test_cross_validation_refuses_a_fold_that_does_not_exist():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--out", "/dev/null",
                           "--folds", "5", "--only-folds", "5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--only-folds [5]: folds are numbered 0 .. 4" in proc.stderr, proc.stderr


def test_cross_validation_refuses_an_override_for_an_unknown_ablation():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--out", "/dev/null",
                           "--ablation-override", "nodelay:init_from=x"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and "'nodelay:init_from=x'" in proc.stderr and "no_delays" in proc.stderr


def test_code_version_names_the_commit_and_counts_changed_code_not_the_runs_own_results(tmp_path):
    """A resumed benchmark rewrites its own tracked results file after every run: that is no change of code,
    while any other tracked change is; outside a git checkout there is no commit to name."""
    from recipes import code_version

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "model.py").write_text("x = 1\n")
    (repo / "results.json").write_text("{}\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "start"]):
        subprocess.run(git + args, check=True, capture_output=True)
    head = subprocess.run(git + ["rev-parse", "--short=12", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    results = str(repo / "results.json")
    assert code_version(root=str(repo)) == head
    (repo / "results.json").write_text('{"runs": [1]}\n')
    assert code_version(root=str(repo)) == head + "+changes"
    assert code_version(outputs=[results], root=str(repo)) == head
    assert code_version(outputs=[str(tmp_path / "elsewhere.json")], root=str(repo)) == head + "+changes"
    # several results files (cross_validate.py's --out and its --ensemble-with partner): none of them is code
    (repo / "partner.json").write_text("{}\n")
    subprocess.run(git + ["add", "partner.json"], check=True, capture_output=True)
    assert code_version(outputs=[results], root=str(repo)) == head + "+changes"  # staged, not committed
    assert code_version(outputs=[results, str(repo / "partner.json")], root=str(repo)) == head
    (repo / "model.py").write_text("x = 2\n")
    assert code_version(outputs=[results], root=str(repo)) == head + "+changes"
    (tmp_path / "plain").mkdir()
    assert code_version(root=str(tmp_path / "plain")) is None


def test_recipe_benchmarks_start_from_init_from(tmp_path):
    """The recipe benchmarks start where `train.py init_from=` would, and refuse a no-delay ablation that
    would load learned delays (it would silently measure frozen learned delays, not zero delays)."""
    import equinox as eqx
    import jax
    import numpy as np
    from hydra.utils import instantiate

    from recipes import ABLATIONS, compose_recipe, initial_model

    small = ["dataset.examples=32", "model.hidden=4"]
    cfg = compose_recipe(small)
    data = instantiate(cfg.dataset).load()
    learned = initial_model(cfg, data, seed=7, ablation="delays")
    learned = eqx.tree_at(lambda m: m.input.delays, learned, learned.input.delays + 0.5)  # as if trained
    eqx.tree_serialise_leaves(tmp_path / "learned.eqx", learned)
    started = initial_model(compose_recipe(small + [f"init_from={tmp_path / 'learned.eqx'}"]), data, 0, "delays")
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(eqx.filter(started, eqx.is_array)),
                                                     jax.tree.leaves(eqx.filter(learned, eqx.is_array))))
    ablation = small + ABLATIONS["no_delays"]
    with pytest.raises(ValueError, match=r"has learned delays \(\.input\.delays\)"):
        initial_model(compose_recipe(ablation + [f"init_from={tmp_path / 'learned.eqx'}"]), data, 0, "no_delays")
    eqx.tree_serialise_leaves(tmp_path / "nodelay.eqx", initial_model(compose_recipe(ablation), data, 7, "no_delays"))
    initial_model(compose_recipe(ablation + [f"init_from={tmp_path / 'nodelay.eqx'}"]), data, 0, "no_delays")


def test_eventprop_benchmark_small_run(tmp_path):
    out = tmp_path / "ep.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eventprop_vs_bptt.py"), "--steps", "40,80",
                    "--inputs", "4", "--hidden", "6", "--classes", "3", "--batch", "2", "--repeats", "1", "--input-rate", "0.05",
                    "--out", str(out)], check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    results = json.loads(out.read_text())
    for row in results["rows"]:
        assert row["eventprop"]["loss"] == row["surrogate"]["loss"]  # one forward simulation, two gradients
        assert row["eventprop"]["grads_finite"] and row["surrogate"]["grads_finite"]
    small, large = results["rows"]
    assert large["input_spikes_per_channel"] == 2 * small["input_spikes_per_channel"]  # a constant rate
    # BPTT keeps per-step residuals (a spiking layer's share of its arrival table each), EventProp the
    # spikes and, during one layer's backward pass, its adjoint per step and neuron: both grow with the
    # run, BPTT's faster, so BPTT needs more, and the more so the longer the run
    assert small["memory_ratio_bptt_over_eventprop"] > 2
    assert large["memory_ratio_bptt_over_eventprop"] > 1.2 * small["memory_ratio_bptt_over_eventprop"]
    assert report.eventprop_report(results).count("\n") == 3 + len(results["rows"])


def test_crossing_search_benchmark_small_run(tmp_path):
    """Both searches find the same spikes, each within float32 rounding of the float64 reference, and the
    module's search is restored after the benchmark has swapped it."""
    out = tmp_path / "cs.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "crossing_search.py"), "--batch", "8", "--repeats", "1",
                    "--out", str(out), "--", "model=lif_network", "trainer=eventprop", "dataset=yinyang",
                    "model.hidden=[32]", "dataset.examples=64"],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    results = json.loads(out.read_text())
    assert results["hidden_spikes_per_example"] > 1
    for row in results["searches"].values():
        assert row["max_spike_time_error"] is not None and row["max_spike_time_error"] < 1e-3
        assert row["ms_per_training_step"] > 0
    assert results["searches"]["halving"]["halvings"] == 24 and results["searches"]["halving"]["newton_steps"] == 0
    assert "| 14 |" in report.crossing_search_report(results)
    import crossing_search
    from zoo import eventprop
    before = (eventprop.BRACKET_HALVINGS, eventprop.NEWTON_STEPS)
    with pytest.raises(RuntimeError), crossing_search.search(24, 0):
        assert (eventprop.BRACKET_HALVINGS, eventprop.NEWTON_STEPS) == (24, 0)
        raise RuntimeError
    assert (eventprop.BRACKET_HALVINGS, eventprop.NEWTON_STEPS) == before
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "crossing_search.py"), "--out", str(out), "--",
                          "model=lif_network", "trainer=eventprop", "dataset=yinyang", "model.recurrent=true"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "feed-forward network" in bad.stderr


def test_frame_cnn_reference_runs_the_recipes_folds_and_renders(tmp_path):
    """The non-spiking reference trains on the same folds as cross_validate.py (every example tested once),
    through the recipe's trainer, and refuses data without frames; report.py tabulates its files."""
    def run(out, *options, recipe=("dataset=saccades", "dataset.examples=40", "dataset.cache_dir=" + str(tmp_path),
                                   "trainer.epochs=2", "trainer.batch_size=8", "trainer.val_fraction=0.1")):
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "frame_cnn_reference.py"), "--folds", "2",
                               "--hidden", "8", "--features", "4", "--out", str(tmp_path / out), *options, "--",
                               *recipe], cwd=ROOT, capture_output=True, text=True, timeout=600)
    one, three = run("one.json"), run("three.json", "--time-bins", "3")
    assert one.returncode == 0 and three.returncode == 0, one.stderr[-2000:] + three.stderr[-2000:]
    results = [json.loads((tmp_path / f).read_text()) for f in ("one.json", "three.json")]
    for r in results:
        runs = r["runs"]["frame_cnn"]
        assert sum(x["test_examples"] for x in runs) == 40 and [x["fold"] for x in runs] == [0, 1]
        assert all(0 <= x["test_accuracy"] <= 1 and len(x["history"]) == 2 for x in runs)
    # the frames differ, so do the runs: the time bins reach the model
    assert results[0]["runs"]["frame_cnn"][0]["history"] != results[1]["runs"]["frame_cnn"][0]["history"]
    table = report.frame_cnn_report(results).splitlines()
    assert [row.split(" | ")[:2] for row in table[-2:]] == [["| 1", "(as the first row)"], ["| 3", "(as the first row)"]]
    mean = 100 * results[1]["summary"]["frame_cnn"]["test_accuracy_mean"]
    assert f"| {mean:.2f} ± " in table[-1]
    other = {**results[1], "command": results[1]["command"].replace("--folds 2", "--folds 2 --seed 1")}
    with pytest.raises(ValueError, match="is not measured as"):  # other folds would not compare
        report.frame_cnn_report([results[0], other])
    with pytest.raises(ValueError, match="incomplete"):
        report.frame_cnn_report([results[0], {**results[1], "summary": {}}])
    frameless = run("none.json", recipe=("dataset.examples=16", "trainer.epochs=1"))
    assert frameless.returncode == 2 and "has no frame shape" in frameless.stderr
    too_many = run("many.json", "--time-bins", "31")  # more spans than the rasters' 30 steps
    assert too_many.returncode == 2 and "--time-bins 31: must lie in [1, 30]" in too_many.stderr


def test_first_epoch_is_the_first_row_of_the_cross_validated_fold(tmp_path):
    """`first_epoch.py` trains fold 1 for its first epoch under the full run's schedule: the row it reports
    is that of `cross_validate.py`'s fold 1, and the spikes it counts come from the model before and after."""
    recipe = ["dataset.examples=64", "trainer.epochs=3", "model.hidden=4", "trainer.batch_size=16"]
    cv, first = tmp_path / "cv.json", tmp_path / "first.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cross_validate.py"), "--folds", "2", "--only-folds", "1",
                    "--ablations", "delays", "--out", str(cv), "--", *recipe],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "first_epoch.py"), "--folds", "2", "--fold", "1",
                    "--recordings", "8", "--out", str(first), "--", *recipe],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    row = json.loads(first.read_text())
    [fold] = json.loads(cv.read_text())["runs"]["delays"]
    untimed = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    assert untimed(row["first_epoch"]) == untimed(fold["history"][0])
    assert row["test_recordings"] == 8 and row["spikes_per_recording_before"] > 0
    assert row["spikes_per_recording_after"] != row["spikes_per_recording_before"]  # the epoch changed the model
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "first_epoch.py"), "--folds", "2", "--fold", "2",
                          "--out", str(first)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "--fold 2: folds are numbered 0 .. 1" in bad.stderr


def test_silent_maps_counts_the_maps_after_each_epoch_as_the_run_trains_them(tmp_path):
    """`silent_maps.py` trains a fold's first epochs under the full run's schedule and counts, per block, the
    maps that never spike on its training recordings: before training and after each epoch, beside that
    epoch's row of the cross-validated fold; it refuses models without maps and epochs past the run's."""
    recipe = ["model=delayed_conv", "dataset=saccades", "dataset.examples=40", "dataset.cache_dir=" + str(tmp_path),
              "model.hidden=8", "model.features=[4,6]", "queue=scheduled", "trainer.epochs=3", "trainer.batch_size=8",
              "trainer.val_fraction=0.1", "trainer.scan_epoch=false"]

    def run(script, out, *options, overrides=recipe):
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--folds", "2", *options,
                               "--out", str(tmp_path / out), "--", *overrides],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
    silent = run("silent_maps.py", "silent.json", "--fold", "1", "--epochs", "2", "--recordings", "8")
    cv = run("cross_validate.py", "cv.json", "--only-folds", "1", "--ablations", "delays")
    assert silent.returncode == 0 and cv.returncode == 0, silent.stderr[-2000:] + cv.stderr[-2000:]
    result = json.loads((tmp_path / "silent.json").read_text())
    [fold] = json.loads((tmp_path / "cv.json").read_text())["runs"]["delays"]
    assert result["maps"] == [4, 6] and result["training_recordings"] == 8
    assert [e["epoch"] for e in result["epochs"]] == [0, 1, 2] and result["epochs"][0]["history"] is None
    untimed = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    assert [untimed(e["history"]) for e in result["epochs"][1:]] == [untimed(h) for h in fold["history"][:2]]
    for counts in [e["silent_maps"] for e in result["epochs"]] + [fold["silent_maps"]]:  # the fold's: once trained
        assert len(counts) == 2 and all(0 <= n <= m for n, m in zip(counts, [4, 6]))
    too_long = run("silent_maps.py", "long.json", "--epochs", "3")
    assert too_long.returncode == 2 and "--epochs 3: must lie in [1, trainer.epochs - 1 = 2]" in too_long.stderr
    no_maps = run("silent_maps.py", "ffn.json", overrides=recipe[1:5])
    assert no_maps.returncode == 2 and "DelayedFeedForward has no feature maps" in no_maps.stderr


def test_readme_silent_maps_table_is_generated_from_the_committed_results():
    readme = (ROOT / "README.md").read_text()
    section = re.search(re.escape(report.SM_START) + r"\n(.*?)\n" + re.escape(report.SM_END), readme, re.S)
    assert section, "README has no silent-maps section"
    directory = ROOT / "benchmarks" / "silent_maps"
    # the zoo models, then the fold's runs: the first is the reference whose overrides the others' rows leave out
    files = [directory / f"{name}_cpu.json" for name in ("zoo_nmnist", "zoo_nmnist_nodelay", "recipe", "warmup_0.05",
                                                         "weight_scale_1", "map_rate_floor",
                                                         "map_rate_floor_capacity_16384")]
    assert sorted(files) == sorted(directory.glob("*.json"))
    assert section.group(1) == report.silent_maps_report([json.loads(f.read_text()) for f in files])


def test_readme_first_epoch_table_is_generated_from_the_committed_results():
    readme = (ROOT / "README.md").read_text()
    section = re.search(re.escape(report.FE_START) + r"\n(.*?)\n" + re.escape(report.FE_END), readme, re.S)
    assert section, "README has no first-epoch section"
    # the first file is the reference whose overrides the others' rows leave out
    files = [ROOT / "benchmarks" / "first_epoch" / "hidden_256_cpu.json",
             ROOT / "benchmarks" / "first_epoch" / "hidden_256_clip_norm_1_cpu.json",
             ROOT / "benchmarks" / "first_epoch" / "affine_10_cpu.json",
             ROOT / "benchmarks" / "first_epoch" / "affine_10_warmup_0.05_cpu.json"]
    assert sorted(files) == sorted((ROOT / "benchmarks" / "first_epoch").glob("*.json"))
    assert section.group(1) == report.first_epoch_report([json.loads(f.read_text()) for f in files])
