"""The `multigroup` subcommands; each module has `register(parser)` and `run(args, extra)`."""
