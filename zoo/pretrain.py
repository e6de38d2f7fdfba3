"""Make a zoo model from its registered recipe: train, export, evaluate, tune, write the card.

    python -m zoo.pretrain lif_network.yinyang [--run-dir runs/pretrain/NAME] [--eval-split test] [--kinds K ...]

1. ``python train.py <recipe> hydra.run.dir=RUN`` (skipped when RUN already holds a trained model);
2. export to ``zoo/pretrained/NAME`` (safetensors weights, config.json with the recipe and history);
3. ``python evaluate.py model=NAME benchmark=true card=true`` on the test split;
4. ``python -m zoo.autotune NAME`` for this device's variant; the card is regenerated at each step.

For recordings whose test split is withheld (N-MNIST here), give ``--eval-split train``: the benchmark's
timings are then measured on training recordings and the card marks that split as seen in training.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from . import autotune, cards
from .registry import get_entry, list_models
from .runs import export_run

REPO = Path(__file__).resolve().parents[1]  # where train.py and evaluate.py live (an editable checkout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="train, export, evaluate and tune a registered zoo model")
    parser.add_argument("name")
    parser.add_argument("--run-dir", default=None, help="train.py run directory (default runs/pretrain/NAME)")
    parser.add_argument("--eval-split", default="test", help="recordings: the split evaluate.py measures")
    parser.add_argument("--root", default=None, help="recordings: dataset root for evaluation (default: training's)")
    parser.add_argument("--kinds", nargs="+", default=list(autotune.KINDS),
                        help="queue kinds the benchmark and the autotuner measure (default: all)")
    args = parser.parse_args(argv)
    entry = get_entry(args.name)
    run = Path(args.run_dir or REPO / "runs" / "pretrain" / entry.name).resolve()
    if not (run / "model.eqx").is_file():
        subprocess.run([sys.executable, "train.py", *entry.recipe, f"hydra.run.dir={run}"], cwd=REPO, check=True)
    loaded = export_run(str(run), entry.name, entry.recipe)
    loaded.config.update(summary=entry.summary, ablation_of=entry.ablation_of, hub_id=entry.hub_id)
    loaded.save_weights(entry.shipped)  # zoo/pretrained/NAME: weights and config.json
    cards.write_card(entry.shipped, entry.card)  # model_cards/NAME: the card and its plots
    evaluate = [sys.executable, "evaluate.py", f"model={entry.name}", "benchmark=true", "card=true",
                f"hydra.run.dir={run / 'evaluate'}", f"benchmark_queues=[{','.join(args.kinds)}]"]
    if args.eval_split != "test":
        evaluate.append(f"split={args.eval_split}")
    if args.root:
        evaluate.append(f"root={args.root}")
    subprocess.run(evaluate, cwd=REPO, check=True)
    autotune.main([entry.name, "--split", args.eval_split, "--kinds", *args.kinds,
                   *(["--root", args.root] if args.root else [])])
    for twin in set(cards.ablation_pair(entry.name)) - {entry.name}:  # its card shows this model's results too
        if twin in list_models(pretrained=True):
            cards.write_card(get_entry(twin).shipped, get_entry(twin).card)
    print(f"{entry.name}: {entry.shipped}")


if __name__ == "__main__":
    main()
