"""The `multigroup` command: one module per subcommand under `multigroup.commands`, heavy imports inside each."""

import argparse
import sys

from .commands import evaluate, export, predict, push, train, tune

COMMANDS = {
    "train": train,
    "evaluate": evaluate,
    "predict": predict,
    "tune-thresholds": tune,
    "push": push,
    "export": export,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="multigroup", description="Train, evaluate and serve multi-group models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.register(subparsers.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__))
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return COMMANDS[args.command].run(args, extra) or 0
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"multigroup {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
