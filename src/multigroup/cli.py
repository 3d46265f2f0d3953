"""The `multigroup` command: one module per subcommand under `multigroup.commands`, heavy imports inside each."""

import argparse
import sys

from .commands import evaluate, export, predict, push, serve, train, tune

COMMANDS = {
    "train": train,
    "evaluate": evaluate,
    "predict": predict,
    "tune-thresholds": tune,
    "push": push,
    "export": export,
    "serve": serve,
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its help, where there is one to show: not for a required option, a flag (off
    unless given), a repeatable option (none unless given) or a default of None (whose help says what leaving the
    option out does), nor where the help already names the default."""

    def _get_help_string(self, action):
        if action.required or action.default is None or action.default is False or action.default == []:
            return action.help
        if "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="multigroup", description="Train, evaluate and serve multi-group models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        summary = module.__doc__.splitlines()[0]
        module.register(
            subparsers.add_parser(name, help=summary, description=module.__doc__, formatter_class=HelpFormatter)
        )
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
