"""Markdown tables from a `queues_vs_adseq.py` results file, and the README section made of them.

Usage:
    python benchmarks/report.py benchmarks/results_cpu.json             # print the tables
    python benchmarks/report.py benchmarks/results_cpu.json --readme README.md   # rewrite README section
    python benchmarks/report.py --delay-task benchmarks/delay_task_cpu.json --readme README.md
    python benchmarks/report.py --dense-conv benchmarks/delays_vs_dense_conv_cpu.json --readme README.md
    python benchmarks/report.py --spyx benchmarks/lif_layer_vs_spyx_cpu.json --readme README.md
    python benchmarks/report.py --cross-validation benchmarks/nmnist_cv_cpu.json --readme README.md
    python benchmarks/report.py --cross-validation-saccades benchmarks/nmnist_cv_saccades_cpu.json --readme README.md
    python benchmarks/report.py --cross-validation-conv-variants benchmarks/nmnist_cv_conv_cpu.json \
        benchmarks/nmnist_cv_conv_variants/*.json --readme README.md
    python benchmarks/report.py --cross-validation-conv-probes \
        benchmarks/nmnist_cv_conv_variants/max_delay_8_batch_size_32_cpu.json \
        benchmarks/nmnist_cv_conv_probes/*.json --readme README.md
    python benchmarks/report.py --cross-validation-conv-running benchmarks/nmnist_cv_conv_variants/no_pretraining_cpu.json \
        benchmarks/nmnist_cv_conv_running/*.json --readme README.md
    python benchmarks/report.py --cross-validation-conv-stopped benchmarks/nmnist_cv_conv_variants/batch_size_16_cpu.json \
        benchmarks/nmnist_cv_conv_stopped/*.json --readme README.md
    python benchmarks/report.py --cross-validation-conv-fine-tuning benchmarks/nmnist_cv_conv_cpu.json \
        benchmarks/nmnist_cv_conv_fine_tuning/*.json --readme README.md
    python benchmarks/report.py --first-epoch benchmarks/first_epoch/hidden_256_cpu.json \
        benchmarks/first_epoch/hidden_256_clip_norm_1_cpu.json benchmarks/first_epoch/affine_10_cpu.json \
        benchmarks/first_epoch/affine_10_warmup_0.05_cpu.json --readme README.md
    python benchmarks/report.py --silent-maps benchmarks/silent_maps/zoo_*.json benchmarks/silent_maps/recipe_cpu.json \
        benchmarks/silent_maps/warmup_0.05_cpu.json benchmarks/silent_maps/weight_scale_1_cpu.json --readme README.md
    python benchmarks/report.py --eventprop benchmarks/eventprop_vs_bptt_cpu.json --readme README.md
    python benchmarks/report.py --yinyang-eventprop benchmarks/yinyang_eventprop_cpu.json --readme README.md
    python benchmarks/report.py --yinyang-eventprop-variants benchmarks/yinyang_eventprop_cpu.json \
        benchmarks/yinyang_eventprop_variants/*.json --readme README.md
    python benchmarks/report.py --delay-task-eventprop benchmarks/delay_task_eventprop_cpu.json --readme README.md
"""

from __future__ import annotations

import argparse
import json
import re
import shlex

import numpy as np

START, END = "<!-- BENCHMARK:START -->", "<!-- BENCHMARK:END -->"
DELAY_START, DELAY_END = "<!-- DELAY_TASK:START -->", "<!-- DELAY_TASK:END -->"
DENSE_START, DENSE_END = "<!-- DENSE_CONV:START -->", "<!-- DENSE_CONV:END -->"
SPYX_START, SPYX_END = "<!-- SPYX:START -->", "<!-- SPYX:END -->"
CV_START, CV_END = "<!-- CROSS_VALIDATION:START -->", "<!-- CROSS_VALIDATION:END -->"
CVCV_START, CVCV_END = "<!-- CROSS_VALIDATION_CONV_VARIANTS:START -->", "<!-- CROSS_VALIDATION_CONV_VARIANTS:END -->"
CVS_START, CVS_END = "<!-- CROSS_VALIDATION_SACCADES:START -->", "<!-- CROSS_VALIDATION_SACCADES:END -->"
CVC_START, CVC_END = "<!-- CROSS_VALIDATION_CONV:START -->", "<!-- CROSS_VALIDATION_CONV:END -->"
CVCP_START, CVCP_END = "<!-- CROSS_VALIDATION_CONV_PROBES:START -->", "<!-- CROSS_VALIDATION_CONV_PROBES:END -->"
CVCR_START, CVCR_END = "<!-- CROSS_VALIDATION_CONV_RUNNING:START -->", "<!-- CROSS_VALIDATION_CONV_RUNNING:END -->"
CVCS_START, CVCS_END = "<!-- CROSS_VALIDATION_CONV_STOPPED:START -->", "<!-- CROSS_VALIDATION_CONV_STOPPED:END -->"
CVCF_START, CVCF_END = "<!-- CROSS_VALIDATION_CONV_FINE_TUNING:START -->", "<!-- CROSS_VALIDATION_CONV_FINE_TUNING:END -->"
FCNN_START, FCNN_END = "<!-- FRAME_CNN:START -->", "<!-- FRAME_CNN:END -->"
FE_START, FE_END = "<!-- FIRST_EPOCH:START -->", "<!-- FIRST_EPOCH:END -->"
SM_START, SM_END = "<!-- SILENT_MAPS:START -->", "<!-- SILENT_MAPS:END -->"
EP_START, EP_END = "<!-- EVENTPROP:START -->", "<!-- EVENTPROP:END -->"
CS_START, CS_END = "<!-- CROSSING_SEARCH:START -->", "<!-- CROSSING_SEARCH:END -->"
YY_START, YY_END = "<!-- YINYANG_EVENTPROP:START -->", "<!-- YINYANG_EVENTPROP:END -->"
YYV_START, YYV_END = "<!-- YINYANG_EVENTPROP_VARIANTS:START -->", "<!-- YINYANG_EVENTPROP_VARIANTS:END -->"
DTE_START, DTE_END = "<!-- DELAY_TASK_EVENTPROP:START -->", "<!-- DELAY_TASK_EVENTPROP:END -->"
ZOO_START, ZOO_END = "<!-- ZOO:START -->", "<!-- ZOO:END -->"


def _us(row, key):
    return f"{row[key]:.1f}" if key in row else "—"


def _mb(row, key):
    return f"{row[key] / 2**20:.1f}" if key in row else "—"


def _ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "—"


def _failure(row, lib):
    errors = [row[k] for k in row if k.startswith(lib) and k.endswith("error")]
    return errors[0].split(":")[0] if errors else ""


def poisson_table(results) -> str:
    cfg = results["poisson_config"]
    lines = [
        f"Poisson: {cfg['queues']:,} independent queues, spike probability 1/400 per step, delay "
        f"{cfg['delay_steps']} steps, {cfg['steps']:,} steps, {cfg['stream']}.",
        "",
        "| queue | ours µs/step | ours, checks on | adseq µs/step | speed-up | delivered (ours = adseq) | "
        "ours dropped | conserved |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in results["poisson"]:
        queue = r["queue"] + (f" (delay {r['delay_steps']})" if r["delay_steps"] != cfg["delay_steps"] else "")
        same = "yes" if r.get("ours_delivered") == r.get("adseq_delivered") else \
            f"{r.get('ours_delivered')} vs {r.get('adseq_delivered')}"
        lines.append(
            f"| {queue} | {_us(r, 'ours_us_per_step')} | {_us(r, 'ours_validated_us_per_step')} | "
            f"{_us(r, 'adseq_us_per_step')} | {_ratio(r.get('adseq_us_per_step'), r.get('ours_us_per_step'))} | "
            f"{same} | {r.get('ours_dropped', '—')} | {'yes' if r.get('ours_conserved') else 'NO'} |")
    return "\n".join(lines)


def rsnn_table(results) -> str:
    cfg = results["rsnn_config"]
    lines = [
        f"Recurrent LIF, reverse-mode gradient of the spike count w.r.t. the {cfg['neurons']}x{cfg['neurons']} "
        f"weights, {cfg['steps']:,} steps of {cfg['dt_ms']} ms; *remat*: `queues.checkpointed_scan` with chunks "
        f"of {cfg['remat_chunk']} steps, applied alike to both libraries. Memory: XLA's compiled arguments + "
        "outputs + temporaries.",
        "",
        "| queue | ours µs/step | adseq µs/step | ours MiB | adseq MiB | ours remat µs/step | adseq remat µs/step "
        "| ours remat MiB | adseq remat MiB | spikes ours / adseq | dropped (ours) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results["rsnn_grad"]:
        adseq_note = _failure(r, "adseq_")
        lines.append(
            f"| {r['queue']} | {_us(r, 'ours_us_per_step')} | {_us(r, 'adseq_us_per_step') if 'adseq_us_per_step' in r else adseq_note or '—'} "
            f"| {_mb(r, 'ours_peak_bytes')} | {_mb(r, 'adseq_peak_bytes')} | {_us(r, 'ours_remat_us_per_step')} "
            f"| {_us(r, 'adseq_remat_us_per_step') if 'adseq_remat_us_per_step' in r else adseq_note or '—'} "
            f"| {_mb(r, 'ours_remat_peak_bytes')} | {_mb(r, 'adseq_remat_peak_bytes')} "
            f"| {r.get('ours_spikes', '—')} / {r.get('adseq_spikes', '—')} | {r.get('ours_dropped', '—')} |")
    errors = sorted({f"{r['queue']}: {r[k]}" for r in results["rsnn_grad"] for k in r if k.endswith("error")})
    if errors:
        lines += ["", "Failures recorded by the benchmark:", ""] + [f"* {e}" for e in errors]
    lines += ["", "Against adseq's fastest gradient-capable queue (same kind on both sides):", "",
              "| ours vs adseq | queue | ours µs/step | adseq µs/step | speed-up | ours MiB | adseq MiB | memory ratio |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for mode, s in results["rsnn_summary"].items():
        lines.append(f"| {mode.replace('_vs_', ' vs ').replace('_', ' ').strip()} | {s['queue']} | "
                     f"{s['ours_us_per_step']:.1f} | {s['adseq_us_per_step']:.1f} | {s['speedup']:.2f}x | "
                     f"{s['ours_peak_bytes'] / 2**20:.1f} | {s['adseq_peak_bytes'] / 2**20:.1f} | "
                     f"{s['memory_ratio']:.3f} |")
    return "\n".join(lines)


def report(results) -> str:
    parts = [f"Measured by `{results['command']}` on {results['processor'] or results['platform']} "
             f"({results['cpu_count']} cores, {results['device']}), JAX {results['jax']}, adseq {results['adseq']}.",
             "", poisson_table(results)]
    if "rsnn_grad" in results:
        parts += ["", rsnn_table(results)]
    return "\n".join(parts)


def _unfinished(results, runs_each: int | None) -> list[str]:
    """The models of a results file whose runs are not all there (no summary yet, or fewer runs than
    ``runs_each``; None: the count its summary states)."""
    summary = results["summary"]
    return [name for name, runs in results["runs"].items() if name not in summary
            or len(runs) != (runs_each if runs_each is not None else summary[name]["seeds"])]


def refuse_unfinished(results, runs_each: int | None, what: str) -> None:
    """The benchmarks save after every run, so an interrupted or still-running one leaves a valid but
    partial file: refuse it rather than publish a table with missing rows. ``runs_each``: the runs every
    ablation needs (None: the count its summary states)."""
    unfinished = _unfinished(results, runs_each)
    if unfinished or not results["summary"]:
        raise ValueError(f"{what} results are incomplete (unfinished: {unfinished or 'all'}); "
                         f"rerun `{results['command']}` to the end")


def delay_task_report(results) -> str:
    refuse_unfinished(results, None, "seed")
    lines = [f"Measured by `{results['command']}` ({results['device']}): test accuracy on freshly generated "
             "examples, mean ± std over seeds.", "",
             "| model | test accuracy | seeds | overrides |", "|---|---:|---:|---|"]
    for name, s in results["summary"].items():
        lines.append(f"| {name.replace('_', ' ')} | {100 * s['test_accuracy_mean']:.2f} ± {100 * s['test_accuracy_std']:.2f} % "
                     f"| {s['seeds']} | {' '.join(s['overrides']) or '(the recipe)'} |")
    for name, seeds in results.get("reused", {}).get("runs", {}).items():
        lines += ["", f"The {name.replace('_', ' ')} runs of seeds {', '.join(map(str, seeds))} were measured by "
                  f"`{results['reused']['command']}`: `--reuse` carried them over, the config each resolves to "
                  "being the same as this command's."]
    return "\n".join(lines)


# options that do not change how a run is measured
SAME_MEASUREMENT = ("--out", "--jobs", "--ablations", "--save-models")


def _split_command(command: str, ignored: tuple[str, ...] = SAME_MEASUREMENT) -> tuple[list[str], list[str]]:
    """A delay_task.py (or cross_validate.py) command's options before ``--`` less the ``ignored`` ones
    with their values (by default those that do not change how a run is measured: --out, --jobs, and
    --ablations, which models run; each table checks that the ones it shows are there), and its train.py
    overrides after it."""
    words = shlex.split(command)
    cut = words.index("--") if "--" in words else len(words)
    options, skipping = [], False
    for word in words[:cut]:
        if word.startswith("--"):  # an option's values run up to the next option
            skipping = word.split("=")[0] in ignored
        if not skipping:
            options.append(word)
    return options, words[cut + 1:]


def _variant_rows(results: list[dict], what: str, runs_each, ignored: tuple[str, ...] = SAME_MEASUREMENT,
                  partial: bool = False) -> list[list[str]]:
    """`_changes` of results files whose runs are all there: unless ``partial`` (a table that names a
    file's missing runs), a file with runs missing is refused, and the first (the recipe) always is."""
    for i, r in enumerate(results):
        if i == 0 or not partial:
            refuse_unfinished(r, runs_each(r), what)
    return _changes(results, ignored)


def _option_values(command: str, option: str) -> list[str]:
    """The values a command gives ``option`` (``--option VALUE`` or ``--option=VALUE``) before ``--``, in order."""
    words = shlex.split(command)
    words = words[:words.index("--")] if "--" in words else words
    return [value for word, value in zip(words, words[1:]) if word == option] + [
        w.split("=", 1)[1] for w in words if w.startswith(option + "=")]


def _ablation_overrides(command: str) -> list[str]:
    """A cross_validate.py command's ``--ablation-override ABLATION:OVERRIDE`` values, in order."""
    return _option_values(command, "--ablation-override")


def _tested_model(command: str) -> list[str]:
    """A cross_validate.py command's options that change the model tested from the network alone, each as one
    change: ``--test-time-shift S`` (S > 0: the network averaged over shifted views) and ``--ensemble-with
    FILE`` (the network with FILE's network of the fold)."""
    return ([f"--test-time-shift {v}" for v in _option_values(command, "--test-time-shift") if int(v)]
            + [f"--ensemble-with {v}" for v in _option_values(command, "--ensemble-with")])


def _changes(results: list[dict], ignored: tuple[str, ...] = SAME_MEASUREMENT) -> list[list[str]]:
    """What each results file changed against the first (the recipe): its train.py overrides that the
    recipe lacks, then ``(without ...)`` the recipe's that it lacks; an ``--ablation-override`` is one of
    them, ``no_delays:init_from=...`` (it changes that model's runs only), and so are ``--test-time-shift S``
    and ``--ensemble-with FILE`` (the same training, another model tested). Refuses a file whose other
    options before ``--`` (less the ``ignored`` ones) differ from the recipe's: its numbers would measure
    something else."""
    ignored = ignored + ("--ablation-override", "--test-time-shift", "--ensemble-with")
    options, recipe = _split_command(results[0]["command"], ignored)
    recipe = recipe + _ablation_overrides(results[0]["command"]) + _tested_model(results[0]["command"])
    changes = []
    for r in results:
        mine, overrides = _split_command(r["command"], ignored)
        overrides = overrides + _ablation_overrides(r["command"]) + _tested_model(r["command"])
        if mine != options:
            raise ValueError(f"`{r['command']}` is not measured as `{results[0]['command']}` is (other options "
                             f"than {', '.join(ignored)} before `--`): its row would not compare")
        keys = {o.split("=")[0] for o in overrides}
        missing = [o for o in recipe if o.split("=")[0] not in keys]
        changes.append([o for o in overrides if o not in recipe] + ([f"(without {' '.join(missing)})"] if missing else []))
    return changes


def _labels(changes: list[list[str]], codes: list[str]) -> list[str]:
    """Each row's name: what its file changed against the recipe's, ``(the recipe)`` with nothing changed.
    A row whose changes an earlier row already has, run by other commits, says so: ``(the recipe, other
    code)``, ``x=1 (other code)``; the code column shows which."""
    labels = []
    for i, (changed, code) in enumerate(zip(changes, codes)):
        again = any(changes[j] == changed and codes[j] != code for j in range(i))
        if changed:
            labels.append(" ".join(changed) + (" (other code)" if again else ""))
        else:
            labels.append("(the recipe, other code)" if again else "(the recipe)")
    return labels


def _code(runs: list[dict]) -> str:
    """The commits the runs ran from (``code``, recorded since commit 69a8fd2), in order, short: a row
    measured by other code than the recipe's says so."""
    def short(code: str | None) -> str:
        if not code:
            return "not recorded"
        commit, plus, changes = code.partition("+")
        return commit[:7] + plus + changes
    return ", ".join(dict.fromkeys(short(r.get("code")) for r in runs))


def variants_report(results: list[dict], ablation: str = "delays") -> str:
    """One row per delay_task.py results file, all of the ``ablation`` model: how each recipe variant (the
    overrides that differ from the first file's, the recipe) scored on validation, which picks among them,
    and on test."""
    changes = _variant_rows(results, "seed", lambda r: None)
    lacking = [r["command"] for r in results if ablation not in r["summary"]]
    if lacking:
        raise ValueError(f"no {ablation} runs in the results of {lacking}")
    lines = [f"Variants of the recipe above, {ablation.replace('_', ' ')} only: mean validation accuracy (it picks "
             "the recipe) and test accuracy (mean ± std over seeds), each row measured by `delay_task.py` with "
             "the recipe's command and the overrides shown; code: the commits its runs ran from.", "",
             "| variant | validation accuracy | test accuracy | seeds | code |", "|---|---:|---:|---|---|"]
    codes = [_code(r["runs"][ablation]) for r in results]
    for r, label, code in zip(results, _labels(changes, codes), codes):
        runs = r["runs"][ablation]
        val = np.mean([x["val_accuracy"] for x in runs])
        test = np.array([x["test_accuracy"] for x in runs])
        lines.append(f"| {label} | {100 * val:.2f} % | {100 * test.mean():.2f} ± {100 * test.std():.2f} % | "
                     f"{', '.join(str(x['seed']) for x in runs)} | {code} |")
    return "\n".join(lines)


def cv_variants_report(results: list[dict]) -> str:
    """One row per cross_validate.py results file: the overrides that differ from the first file's (the
    recipe), each model's test accuracy, mean ± std over the same folds, and the first model's (delays)
    difference from the recipe's fold by fold (`_fold_differences`), which the spread between folds does
    not blur."""
    changes = _variant_rows(results, "cross-validation", lambda r: r["folds"])
    names = list(results[0]["summary"])
    if any(list(r["summary"]) != names for r in results):  # the same folds: _variant_rows checked --folds
        raise ValueError(f"every variant needs the recipe's models {names}")
    first = names[0].replace("_", " ")
    lines = ["Variants of the recipe above, each row measured by `cross_validate.py` with the recipe's command and "
             "the overrides shown: test accuracy of each held-out fold, mean ± std over folds; the variant's "
             f"{first} minus the recipe's on each fold, mean ± std over folds in points, and on how many folds it is "
             "ahead, level and behind; code: the commits its runs ran from.", "",
             "| variant | " + " | ".join(n.replace("_", " ") for n in names) + f" | {first}, paired with the recipe's "
             "| code |", "|---|" + "---:|" * (len(names) + 1) + "---|"]
    codes = [_code([x for n in names for x in r["runs"][n]]) for r in results]
    for i, (r, label, code) in enumerate(zip(results, _labels(changes, codes), codes)):
        cells = [f"{100 * r['summary'][n]['test_accuracy_mean']:.2f} ± {100 * r['summary'][n]['test_accuracy_std']:.2f} %"
                 for n in names]
        if i == 0:
            paired = "–"
        else:
            paired = _ahead(_fold_differences(r["runs"][names[0]], results[0]["runs"][names[0]],
                                              ("the variant", "the recipe")))
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {paired} | {code} |")
    return "\n".join(lines)


def _only_folds(command: str) -> set[str]:
    """The folds a cross_validate.py command's ``--only-folds`` names (none: every fold)."""
    words = shlex.split(command)
    words = words[:words.index("--")] if "--" in words else words
    if "--only-folds" not in words:
        return set()
    rest = words[words.index("--only-folds") + 1:]
    return set(rest[:next((i for i, w in enumerate(rest) if w.startswith("--")), len(rest))])


def _partial(results: dict) -> str:
    """``" (partial: k of n folds)"`` for a cross_validate.py file that does not hold every run its
    command makes (still running, or stopped and to be continued with ``--resume``; each model's summary is
    written when the command ends), else ``""``."""
    folds = len(_only_folds(results["command"])) or results["folds"]
    if not _unfinished(results, folds):
        return ""
    finished = sum(len(runs) for runs in results["runs"].values())
    return f" (partial: {finished} of {folds * len(results['runs'])} folds)"


def cv_probes_report(results: list[dict]) -> str:
    """One row per model and fold of each probe after the first file, the full cross-validation of the recipe
    they probe (the reference; not necessarily today's recipe, which a probe may have replaced):
    a one-fold probe (``cross_validate.py --only-folds``), or a partial run of a changed recipe (its name
    says how many of its folds are in; each fold is saved as it ends, so a run longer than a session shows
    what it has): the probe's test accuracy beside the recipe's on the same held-out fold, the final epoch's
    training accuracy of each (over- or underfitting), and the probe's epoch time; under the table, each
    model a probe has on every fold: its mean and its difference from the reference's paired by fold (the
    README's rule compares the means), and for a probe with both models on every fold, delays minus no delays
    paired by fold beside the reference's. Refuses a probe measured on other folds (another --folds or --seed)."""
    recipe, probes = results[0], results[1:]
    changes = _variant_rows(results, "cross-validation", lambda r: len(_only_folds(r["command"])) or r["folds"],
                            SAME_MEASUREMENT + ("--only-folds",), partial=True)
    size = recipe["examples"] // recipe["folds"]
    first = next(iter(recipe["summary"]))  # the recipe's model with delays
    p = recipe["summary"][first]["test_accuracy_mean"]
    lines = ["Probes of a reference recipe, each measured by `cross_validate.py` with its command, the "
             "overrides shown and `--only-folds` (one fold), or without it and not finished (the folds ended so "
             f"far, `partial` says how many): test accuracy on the held-out fold ({size} recordings: one "
             f"probe's sampling error is about {100 * np.sqrt(p * (1 - p) / size):.1f} points at the reference's "
             f"{first.replace('_', ' ')} accuracy) beside the reference's on the same fold; training accuracy over the final epoch; the probe's "
             "seconds per epoch (its process's own); code: the commit it ran from.", "",
             "| probe | model | fold | test accuracy | the reference's | training accuracy | reference's training | "
             "s per epoch | code |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    codes = [_code([x for runs in r["runs"].values() for x in runs]) for r in results]
    labels = [label + _partial(r) for r, label in zip(probes, _labels(changes, codes)[1:])]
    for r, label in zip(probes, labels):
        for name, runs in r["runs"].items():
            if name not in recipe["runs"]:
                raise ValueError(f"the recipe has no {name} runs to compare `{r['command']}` with")
            ours = {x["fold"]: x for x in recipe["runs"][name]}
            for run in runs:
                base = ours[run["fold"]]
                lines.append(f"| {label} | {name.replace('_', ' ')} | {run['fold']} | "
                             f"{100 * run['test_accuracy']:.2f} % | {100 * base['test_accuracy']:.2f} % | "
                             f"{100 * run['history'][-1]['train_accuracy']:.2f} % | "
                             f"{100 * base['history'][-1]['train_accuracy']:.2f} % | {run['epoch_seconds']:.1f} | "
                             f"{_code([run])} |")
    # a model with every fold in: its mean, and its difference from the reference's paired by fold
    whole = []
    for r, label in zip(probes, labels):
        for name, runs in r["runs"].items():
            if len(runs) < recipe["folds"]:
                continue
            ours, theirs = (np.array([x["test_accuracy"] for x in rs]) for rs in (runs, recipe["runs"][name]))
            d = _fold_differences(runs, recipe["runs"][name], ("the probe", "the reference"))
            single = ""
            for key, without in (("single_view_test_accuracy", "the shifted views"),
                                 ("single_network_test_accuracy", "the ensemble's other network")):
                alone = [x[key] for x in runs if key in x]
                if len(alone) == len(runs):
                    single = (f" (its network alone, without {without}: {100 * np.mean(alone):.2f} ± "
                              f"{100 * np.std(alone):.2f} %)")
            whole.append(f"{label}, {name.replace('_', ' ')}: {100 * ours.mean():.2f} ± {100 * ours.std():.2f} % "
                         f"over its {len(ours)} folds{single}, the reference's {100 * theirs.mean():.2f} ± "
                         f"{100 * theirs.std():.2f} %; minus the reference's fold by fold, in points: {_ahead(d)}.")
        # both models on every fold: what the delays add to this probe, beside what they add to the reference
        if all(len(x["runs"].get(n, [])) == recipe["folds"] for n in ("delays", "no_delays") for x in (r, recipe)):
            whole.append(f"{label}, delays minus no delays fold by fold, in points: {_ahead(_delays_gain(r['runs']))} "
                         f"(the reference's: {_ahead(_delays_gain(recipe['runs']))}).")
    return "\n".join(lines + ([""] + whole if whole else []))


def _ahead(d: np.ndarray) -> str:
    """Differences fold by fold (`_fold_differences`), in points: mean ± std, and where they fall."""
    mean = round(100 * d.mean(), 2) + 0.0  # a tie that rounds to zero reads +0.00, not -0.00
    return (f"{mean:+.2f} ± {100 * d.std():.2f}, ahead on {(d > 0).sum()} of {len(d)}, "
            f"level on {(d == 0).sum()}, behind on {(d < 0).sum()}")


def frame_cnn_report(results: list[dict]) -> str:
    """One row per frame_cnn_reference.py results file, all on the same folds (the first file's options
    before ``--`` but ``--time-bins``): the non-spiking CNN's frames per polarity, the train.py overrides
    that differ from the first file's, and its test accuracy on each held-out fold, mean ± std."""
    changes = _variant_rows(results, "frame CNN", lambda r: r["folds"], SAME_MEASUREMENT + ("--time-bins",))
    lines = [f"Measured by `{results[0]['command']}` ({results[0]['device']}) and, in the other rows, the same "
             "with the frames per polarity (`--time-bins`) and overrides shown: a non-spiking CNN, the "
             "convolutional SNN's topology with ReLU units and no delays, on event-count frames; test accuracy "
             "of each held-out fold, mean ± std over folds; training accuracy over the final epoch, mean over "
             "folds; code: the commits its runs ran from.", "",
             "| frames per polarity | overrides | test accuracy | per fold | training accuracy | code |",
             "|---:|---|---:|---|---:|---|"]
    for r, changed in zip(results, changes):
        options, _ = _split_command(r["command"], ("--out",))
        bins = options[options.index("--time-bins") + 1] if "--time-bins" in options else "1"
        (name, runs), = r["runs"].items()
        summary = r["summary"][name]
        per_fold = ", ".join(f"{100 * x['test_accuracy']:.1f}" for x in runs)
        lines.append(f"| {bins} | {' '.join(changed) or '(as the first row)'} | "
                     f"{100 * summary['test_accuracy_mean']:.2f} ± {100 * summary['test_accuracy_std']:.2f} % | {per_fold} | "
                     f"{100 * np.mean([x['history'][-1]['train_accuracy'] for x in runs]):.2f} % | {_code(runs)} |")
    return "\n".join(lines)


def first_epoch_report(results: list[dict]) -> str:
    """One row per first_epoch.py results file: its train.py overrides against the first file's
    (`_changes`), its fold, the first epoch's loss and validation accuracy, and the network's spikes per
    test recording before and after that epoch. Rows of one fold compare; the folds are the same
    cross-validation's (the same ``--folds`` and ``--seed``), so a row is the first epoch of that fold's run."""
    changes = _changes(results, ("--out", "--fold"))
    lines = [f"Measured by `{results[0]['command']}` ({results[0]['device']}) and, in the other rows, the same "
             "with the fold and overrides shown: one fold's first epoch under the full run's schedule; its loss "
             "and validation accuracy; every neuron's spikes per test recording (the first "
             f"{results[0]['test_recordings']} of the fold), before and after it; code: the commit it ran from.", "",
             "| overrides | fold | loss | validation accuracy | spikes before | spikes after | code |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r, changed in zip(results, changes):
        row = r["first_epoch"]
        val = "–" if row["val_accuracy"] is None else f"{100 * row['val_accuracy']:.1f} %"  # no validation split
        lines.append(f"| {' '.join(changed) or '(as the first row)'} | {r['fold']} | {row['loss']:.3f} | "
                     f"{val} | {r['spikes_per_recording_before']:.1f} | "
                     f"{r['spikes_per_recording_after']:.1f} | {r['code']} |")
    return "\n".join(lines)


def silent_maps_report(results: list[dict]) -> str:
    """One row per measurement of silent_maps.py: first the trained zoo models (``--model``), then one fold's
    epochs under the first fold file's train.py overrides and the others' changes to them (`_changes`):
    per convolution block, the maps that spike on none of the training recordings measured."""
    zoo_models = [r for r in results if r["model"]]
    folds = [r for r in results if not r["model"]]
    if not folds or len({(r["fold"], r["training_recordings"]) for r in folds}) > 1:
        raise ValueError("silent maps: give at least one fold file, all of the same fold and recordings")
    first = folds[0]
    lines = [f"Measured by `{first['command']}` ({first['device']}) and, in the other rows, the same with the "
             "overrides shown, or with `--model` and no overrides for a zoo model: feature maps per convolution "
             f"block ({' and '.join(map(str, first['maps']))} maps) that spike on none of the first "
             f"{first['training_recordings']} training recordings of fold {first['fold']} (those of the zoo "
             "model's own training, for a zoo model), before training (epoch 0) and after each epoch under the "
             "full run's schedule, beside that epoch's training and validation accuracy; code: the commit it "
             "ran from.", "",
             "| model or overrides | epoch | training accuracy | validation accuracy | silent maps per block | code |",
             "|---|---:|---:|---:|---|---|"]

    def percent(row, key):
        return "–" if row is None or row[key] is None else f"{100 * row[key]:.1f} %"

    def silent(measured, maps):
        return ", ".join(f"{n} of {m}" for n, m in zip(measured["silent_maps"], maps))

    for r in zoo_models:
        [measured] = r["epochs"]
        lines.append(f"| zoo model {r['model']} | trained | – | – | {silent(measured, r['maps'])} | {r['code']} |")
    for r, changed in zip(folds, _changes(folds, ("--out",))):
        for e in r["epochs"]:
            lines.append(f"| {' '.join(changed) or '(as the first row)'} | {e['epoch']} | "
                         f"{percent(e['history'], 'train_accuracy')} | {percent(e['history'], 'val_accuracy')} | "
                         f"{silent(e, r['maps'])} | {r['code']} |")
    return "\n".join(lines)


def dense_conv_report(results) -> str:
    lines = [f"Measured by `{results['command']}` ({results['device']}); training step = compiled `jax.grad` "
             "w.r.t. weights and delays; memory = XLA's compiled arguments + outputs + temporaries.", "",
             "| max delay | steps | dense conv ms | dense MiB | ours | ours ms | ours MiB | speed-up | memory ratio |",
             "|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    def ms(r):  # a step with non-finite outputs or gradients has no speed (benchmarks refuse it)
        return f"{r['ms_per_training_step']:.0f}" if "ms_per_training_step" in r else "refused: not finite"

    for row in results["rows"]:
        dense = row["dense"]
        for name, r in row["ours"].items():
            speedup = f"{r['speedup_vs_dense']:.2f}x" if "speedup_vs_dense" in r else "—"
            memory = f"{r['memory_ratio_vs_dense']:.2f}" if "memory_ratio_vs_dense" in r else "—"
            lines.append(f"| {row['max_delay']} | {row['steps']} | {ms(dense)} | "
                         f"{dense['peak_bytes'] / 2**20:.0f} | {name} | {ms(r)} | "
                         f"{r['peak_bytes'] / 2**20:.0f} | {speedup} | {memory} |")
    return "\n".join(lines)


def spyx_report(results) -> str:
    c = results["config"]
    lines = [f"Measured by `{results['command']}` ({results['device']}, spyx {results['spyx']}): Linear + LIF, "
             f"{c['neurons']} neurons, batch {c['batch']}, {c['steps']} steps, input rate {c['rate']}; one training "
             "step = compiled `jax.grad` of the spike count.", "",
             "| layer | ms per training step | time vs spyx | MiB | spike count |", "|---|---:|---:|---:|---:|"]
    for name, r in results["rows"].items():
        ratio = f"{r['time_ratio_vs_spyx']:.2f}x" if "time_ratio_vs_spyx" in r else "1.00x" if name == "spyx" else "—"
        ms = f"{r['ms_per_training_step']:.0f}" if "ms_per_training_step" in r else "refused: not finite"
        lines.append(f"| {name.replace('_', ' ')} | {ms} | {ratio} | "
                     f"{r['peak_bytes'] / 2**20:.0f} | {r['spikes']:.0f} |")
    return "\n".join(lines)


def _dropped(runs: list[dict]) -> str:
    """Spikes the queues dropped, summed over the folds: in every training epoch / in the test; a run made
    before the count was kept says so rather than counting as none."""
    def total(counts):
        counts = list(counts)
        return "not recorded" if any(c is None for c in counts) else str(sum(counts))
    train = total(h.get("dropped_spikes") for r in runs for h in r.get("history") or [{}])
    return f"{train} / {total(r.get('test_dropped_spikes') for r in runs)}"


def cross_validation_report(results) -> str:
    refuse_unfinished(results, results["folds"], "cross-validation")
    lines = [f"Measured by `{results['command']}` ({results['device']}, {results['cpu_count']} cores): "
             f"{results['folds']}-fold stratified cross-validation over {results['examples']} examples; test "
             "accuracy of each held-out fold, mean ± std over folds; epoch time and training samples/s in the "
             "steady state (after compilation); spikes the queues dropped, over all folds, in training (every "
             "epoch) / in the test.", "",
             "| model | test accuracy | epochs | s per epoch | samples/s | dropped spikes | overrides |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, s in results["summary"].items():
        lines.append(f"| {name.replace('_', ' ')} | {100 * s['test_accuracy_mean']:.2f} ± "
                     f"{100 * s['test_accuracy_std']:.2f} % | {s['epochs']} | {s['epoch_seconds']:.1f} | "
                     f"{s['samples_per_second']:.1f} | {_dropped(results['runs'][name])} | "
                     f"{' '.join(s['overrides']) or '(recipe)'} |")
    if {"delays", "no_delays"} <= set(results["summary"]):
        lines += ["", _paired(results["runs"]["delays"], results["runs"]["no_delays"])]
    return "\n".join(lines)


def _fold_differences(runs: list[dict], others: list[dict], names: tuple[str, str]) -> np.ndarray:
    """Test accuracy of ``runs`` minus that of ``others`` fold by fold: both are tested on the same
    recordings in each fold, so the differences carry none of the spread between folds that the two means
    carry. Refuses runs of other folds than ``others``'s (``names`` say whose)."""
    # runs made before they named their fold were saved by a loop over the folds in order
    def by_fold(runs):
        return {r.get("fold", i): r["test_accuracy"] for i, r in enumerate(runs)}
    mine, theirs = by_fold(runs), by_fold(others)
    if set(mine) != set(theirs):
        raise ValueError(f"{names[0]} ran folds {sorted(mine)}, {names[1]} folds {sorted(theirs)}: not paired")
    return np.array([mine[f] - theirs[f] for f in sorted(mine)])


def _delays_gain(runs: dict[str, list[dict]]) -> np.ndarray:
    """What the delays add on each fold: the ``delays`` runs' test accuracy minus the ``no_delays``'s."""
    return _fold_differences(runs["delays"], runs["no_delays"], ("delays", "no delays"))


def _paired(delays: list[dict], no_delays: list[dict]) -> str:
    """Delays against no delays fold by fold (`_delays_gain`)."""
    gain = _delays_gain({"delays": delays, "no_delays": no_delays})
    return f"Paired by fold, delays minus no delays, in points: {_ahead(gain)}."


def eventprop_report(results) -> str:
    c = results["config"]
    lines = [f"Measured by `{results['command']}` ({results['device']}, JAX {results['jax']}): layers "
             f"{'-'.join(str(n) for n in c['sizes'])}, batch {c['batch']}, {c['input_rate']:.4f} input spikes per "
             f"channel and step, max delay {c['max_delay']:g}; one training step = compiled `jax.grad` w.r.t. every "
             "weight and delay; memory = XLA's compiled arguments + outputs + temporaries.", "",
             "| steps | input spikes | EventProp ms | EventProp MiB | BPTT ms | BPTT MiB | BPTT/EventProp memory "
             "| BPTT/EventProp time | hidden spikes | dropped |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        ep, bp = r["eventprop"], r["surrogate"]
        if "error" in ep or "error" in bp:  # a step with non-finite gradients has no speed (benchmarks refuse it)
            lines.append(f"| {r['steps']} | {r['input_spikes_per_channel']} | refused: " + " / ".join(
                f"{name} {x['error']}" for name, x in (("EventProp", ep), ("BPTT", bp)) if "error" in x)
                + " |" * 8)
            continue
        lines.append(f"| {r['steps']} | {r['input_spikes_per_channel']} | {ep['ms_per_training_step']:.0f} | "
                     f"{ep['peak_bytes'] / 2**20:.2f} | "
                     f"{bp['ms_per_training_step']:.0f} | {bp['peak_bytes'] / 2**20:.0f} | "
                     f"{r['memory_ratio_bptt_over_eventprop']:.0f}x | {r['time_ratio_bptt_over_eventprop']:.2f}x | "
                     f"{ep['hidden_spikes_per_example']:.0f} | {ep['dropped_spikes']} |")
    return "\n".join(lines)


def crossing_search_report(results) -> str:
    rows = results["searches"]
    lines = [f"Measured by `{results['command']}` ({results['device']}, JAX {results['jax']}): one EventProp training "
             f"step (value and gradient, batch {results['batch']}) of `{' '.join(results['overrides'])}`, "
             f"{results['hidden_spikes_per_example']:.0f} hidden spikes per example; spike-time error = largest over "
             "the batch's float32 hidden spikes against a float64 simulation halved to below its resolution.", "",
             "| search | membrane evaluations per spiking step | ms per training step | largest spike-time error (steps) |",
             "|---|---:|---:|---:|"]
    for name, label in (("newton", "halvings to a bracket, then Newton steps (now)"),
                        ("halving", "halvings alone (before)")):
        r = rows[name]
        error = "other spikes" if r["max_spike_time_error"] is None else f"{r['max_spike_time_error']:.1e}"
        lines.append(f"| {label}: {r['halvings']} + {r['newton_steps']} | {r['halvings'] + r['newton_steps']} | "
                     f"{r['ms_per_training_step']:.0f} | {error} |")
    lines += ["", f"Halving alone takes {results['time_ratio_halving_over_newton']:.2f}x the time per training step."]
    return "\n".join(lines)


def zoo_report(directory: str) -> str:
    """The shipped models, from their own files: config.json in ``directory`` (zoo/pretrained) and
    evaluation.json beside their cards (model_cards)."""
    import os

    from zoo.cards import no_test_result
    rows = ["| model | data | delays | validation acc. (training run) | test acc. (this CPU) | cpu variant: queue, "
            "dtype, batch (speed-up vs trained queue) |", "|---|---|---|---|---|---|"]
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name, "config.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            config = json.load(f)
        cards = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(directory))), "model_cards")
        evaluation_path = os.path.join(cards, name, "evaluation.json")
        evaluations = []
        if os.path.isfile(evaluation_path):
            with open(evaluation_path) as f:
                evaluations = json.load(f)
        tests = [r for r in evaluations if r["split"].startswith("test")]
        test = f"{tests[0]['accuracy'] * 100:.2f} % ({tests[0]['num_samples']})" if tests else no_test_result(config)
        cpu = config.get("variants", {}).get("cpu")
        tuned = "not tuned" if not cpu else (
            f"{(cpu['queue'] or {}).get('_target_', 'none').rsplit('.', 1)[-1]}, {cpu['dtype']}, {cpu['batch_size']} "
            f"({cpu['speedup_vs_trained']:.2f}x)")
        data = config["dataset"]["_target_"].rsplit(".", 1)[-1]
        val = config.get("training", {}).get("val_accuracy")
        rows.append(f"| [`{name}`](model_cards/{name}/README.md) | {data} | "
                    f"{'no (ablation)' if name.endswith('_nodelay') else 'learned'} | "
                    f"{'none held out' if val is None else f'{val * 100:.2f} %'} | {test} | {tuned} |")
    return "\n".join(rows)


def update_readme(readme_path: str, text: str, start: str = START, end: str = END) -> None:
    with open(readme_path) as f:
        readme = f.read()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(readme):
        raise ValueError(f"{readme_path} has no {start} ... {end} section")
    with open(readme_path, "w") as f:
        f.write(pattern.sub(lambda _: f"{start}\n{text}\n{end}", readme))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", help="a queues_vs_adseq.py results file")
    parser.add_argument("--delay-task", help="a delay_task.py results file")
    parser.add_argument("--dense-conv", help="a delays_vs_dense_conv.py results file")
    parser.add_argument("--spyx", help="a lif_layer_vs_spyx.py results file")
    parser.add_argument("--cross-validation", help="a cross_validate.py results file")
    parser.add_argument("--cross-validation-saccades", help="a cross_validate.py results file, saccade-pretrained")
    parser.add_argument("--cross-validation-conv", help="a cross_validate.py results file, convolutional model")
    parser.add_argument("--cross-validation-conv-variants", nargs="+", metavar="FILE",
                        help="cross_validate.py results files: the conv recipe first, then variants of it")
    parser.add_argument("--cross-validation-conv-probes", nargs="+", metavar="FILE",
                        help="the conv recipe's cross_validate.py results, then one-fold probes (--only-folds)")
    parser.add_argument("--cross-validation-conv-running", nargs="+", metavar="FILE",
                        help="the conv recipe's cross_validate.py results, then runs varying it not yet in the variants")
    parser.add_argument("--cross-validation-conv-stopped", nargs="+", metavar="FILE",
                        help="the recipe they varied, then full runs whose model with delays lost and stopped there")
    parser.add_argument("--cross-validation-conv-fine-tuning", nargs="+", metavar="FILE",
                        help="the saccade-pretrained conv recipe's cross_validate.py results, then runs varying it")
    parser.add_argument("--frame-cnn", nargs="+", metavar="FILE",
                        help="frame_cnn_reference.py results files (the non-spiking reference), same folds")
    parser.add_argument("--first-epoch", nargs="+", metavar="FILE",
                        help="first_epoch.py results files: the first is the reference of the others' overrides")
    parser.add_argument("--silent-maps", nargs="+", metavar="FILE",
                        help="silent_maps.py results files: zoo models, and one fold's runs (the first is the "
                             "reference of the others' overrides)")
    parser.add_argument("--eventprop", help="an eventprop_vs_bptt.py results file")
    parser.add_argument("--crossing-search", help="a crossing_search.py results file")
    parser.add_argument("--yinyang-eventprop", help="a delay_task.py results file of the Yin-Yang recipe")
    parser.add_argument("--yinyang-eventprop-variants", nargs="+", metavar="FILE",
                        help="delay_task.py results files: the Yin-Yang recipe first, then variants of it")
    parser.add_argument("--delay-task-eventprop", help="a delay_task.py results file of the EventProp recipe")
    parser.add_argument("--zoo", help="the shipped pretrained models' directory (zoo/pretrained)")
    parser.add_argument("--readme", help="rewrite this README's generated sections")
    args = parser.parse_args(argv)
    renderers = [(args.results, report, START, END), (args.delay_task, delay_task_report, DELAY_START, DELAY_END),
                 (args.dense_conv, dense_conv_report, DENSE_START, DENSE_END), (args.spyx, spyx_report, SPYX_START, SPYX_END),
                 (args.cross_validation, cross_validation_report, CV_START, CV_END),
                 (args.cross_validation_saccades, cross_validation_report, CVS_START, CVS_END),
                 (args.cross_validation_conv, cross_validation_report, CVC_START, CVC_END),
                 (args.eventprop, eventprop_report, EP_START, EP_END),
                 (args.crossing_search, crossing_search_report, CS_START, CS_END),
                 (args.yinyang_eventprop, delay_task_report, YY_START, YY_END),
                 (args.delay_task_eventprop, delay_task_report, DTE_START, DTE_END)]
    def load(path):
        with open(path) as f:
            return json.load(f)

    sections = [(render(load(path)), start, end) for path, render, start, end in renderers if path]
    if args.yinyang_eventprop_variants:
        sections.append((variants_report([load(p) for p in args.yinyang_eventprop_variants]), YYV_START, YYV_END))
    if args.cross_validation_conv_variants:
        sections.append((cv_variants_report([load(p) for p in args.cross_validation_conv_variants]),
                         CVCV_START, CVCV_END))
    if args.cross_validation_conv_probes:
        sections.append((cv_probes_report([load(p) for p in args.cross_validation_conv_probes]), CVCP_START, CVCP_END))
    if args.cross_validation_conv_running:
        sections.append((cv_probes_report([load(p) for p in args.cross_validation_conv_running]), CVCR_START, CVCR_END))
    if args.cross_validation_conv_stopped:
        sections.append((cv_probes_report([load(p) for p in args.cross_validation_conv_stopped]), CVCS_START, CVCS_END))
    if args.cross_validation_conv_fine_tuning:
        sections.append((cv_probes_report([load(p) for p in args.cross_validation_conv_fine_tuning]), CVCF_START,
                         CVCF_END))
    if args.frame_cnn:
        sections.append((frame_cnn_report([load(p) for p in args.frame_cnn]), FCNN_START, FCNN_END))
    if args.first_epoch:
        sections.append((first_epoch_report([load(p) for p in args.first_epoch]), FE_START, FE_END))
    if args.silent_maps:
        sections.append((silent_maps_report([load(p) for p in args.silent_maps]), SM_START, SM_END))
    if args.zoo:
        sections.append((zoo_report(args.zoo), ZOO_START, ZOO_END))
    if not sections:
        parser.error("give a results file, --delay-task, --dense-conv, --spyx, --cross-validation, --eventprop, ...")
    for text, start, end in sections:
        if args.readme:
            update_readme(args.readme, text, start, end)
        else:
            print(text)


if __name__ == "__main__":
    main()
