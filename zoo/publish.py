"""Publish a pretrained model to the Hugging Face Hub: weights, config, card and plots.

    python -m zoo.publish lif_network.yinyang --repo-id ORG/NAME [--variant gpu] [--private]

A variant goes to its own revision (the branch named after it), whose ``config.json`` makes that
variant the default, so ``zoo.load("ORG/NAME", revision="gpu")`` gets the GPU settings. The token comes
from ``hf auth login`` or ``HF_TOKEN``; ``HF_ENDPOINT`` selects another Hub.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi

from .hub import CONFIG_FILE, Pretrained
from .registry import get_entry


def publish(directory: str | os.PathLike, repo_id: str, *, card: str | os.PathLike | None = None,
            variant: str | None = None, private: bool = False, token: str | None = None, endpoint: str | None = None,
            commit_message: str | None = None) -> str:
    """Upload the pretrained ``directory`` (with the card directory ``card``: README.md, plots and
    evaluation.json, if kept apart) to ``repo_id``, at the ``variant`` branch if given; returns the
    commit URL. The model is checked (checksum, leaves) before anything is sent."""
    directory = Path(directory)
    loaded = Pretrained.load_directory(directory)  # never publish a corrupt or mismatched model
    if variant is not None and variant not in loaded.config.get("variants", {}):
        raise KeyError(f"{directory}: no variant {variant!r}; it has {', '.join(sorted(loaded.config.get('variants', {})))}"
                       " (python -m zoo.autotune tunes one)")
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(directory, staged, ignore=shutil.ignore_patterns("*.tmp"))
        if card is not None:
            shutil.copytree(card, staged, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.tmp"))
        if variant is not None:
            api.create_branch(repo_id, branch=variant, exist_ok=True)
            config = json.loads((staged / CONFIG_FILE).read_text())
            config["default_variant"] = variant  # zoo.load applies it when no variant is asked for
            (staged / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        info = api.upload_folder(repo_id=repo_id, folder_path=staged, revision=variant,
                                 commit_message=commit_message or f"{loaded.config.get('name', directory.name)}"
                                 + (f" ({variant} variant)" if variant else ""))
    return str(info)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description="publish a pretrained zoo model to the Hugging Face Hub")
    parser.add_argument("name", help="a zoo name (its shipped directory) or a pretrained directory")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    parser.add_argument("--variant", default=None, help="publish this variant to its own revision (branch)")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    if os.path.isdir(args.name):
        directory, card = Path(args.name), None
    else:
        directory, card = get_entry(args.name).shipped, get_entry(args.name).card
    url = publish(directory, args.repo_id, card=card, variant=args.variant, private=args.private)
    print(url)
    return url


if __name__ == "__main__":
    main()
