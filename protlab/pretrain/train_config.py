"""Pretraining from a config file: ``python -m protlab.pretrain.train_config --config cfg.yaml``.

The entry ``torchrun`` launches (``torchrun --nproc_per_node=8 -m protlab.pretrain.train_config
--config cfg.yaml``; DDP, only rank 0 writes). The config is JSON or YAML with any
:class:`~protlab.pretrain.config.PretrainConfig` key (unknown keys are rejected by name),
optionally a ``preset``; ``--set key=value`` overrides. ``python -m protlab.pretrain`` is
the stage's own command line (one option per parameter).
"""
from __future__ import annotations

import argparse
import json
import sys

from protlab.core.errors import InputError, ProtlabError
from protlab.core.runtime import dist_env
from protlab.pretrain.config import PretrainConfig, from_dict, load_config, make_config
from protlab.pretrain.loop import run_training


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m protlab.pretrain.train_config", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="JSON or YAML config (may name a 'preset')")
    parser.add_argument("--preset", default=None, help="toy-cpu or server (when no --config)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override settings; VALUE parsed as JSON when it can be")
    return parser.parse_args(argv)


def parse_overrides(items) -> dict:
    """``["key=value", ...]`` → ``{key: value}``, each value parsed as JSON when it can be."""
    overrides = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    overrides = parse_overrides(args.set)
    if args.config:
        base = load_config(args.config).to_dict()
        return from_dict({**base, **overrides}, where=args.config)
    return make_config(args.preset or "toy-cpu", **overrides)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        config = config_from_args(args)
        summary = run_training(config)
    except ProtlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    if dist_env().is_main:
        print(json.dumps({k: v for k, v in summary.items() if k != "metrics"}, default=str))


if __name__ == "__main__":
    main()
