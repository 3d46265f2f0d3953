"""Push a saved model folder to the Hugging Face Hub, with a model card (README.md) written from its config."""

from pathlib import Path


def register(parser) -> None:
    parser.add_argument("--model", required=True, help="a saved multigroup model folder")
    parser.add_argument("--repo-id", required=True, help="namespace/name on the Hub")
    parser.add_argument("--private", action="store_true", help="make the repo private when this push creates it")
    parser.add_argument(
        "--commit-message", default=None, help="the commit's message; default: Upload multigroup model"
    )


def run(args, extra: list[str]) -> int:
    from ..hub import push_folder
    from .common import SAVED_MODEL

    if not Path(args.model).is_dir():
        raise FileNotFoundError(f"--model {args.model}: no folder {args.model} exists. {SAVED_MODEL}.")
    commit = push_folder(args.model, args.repo_id, private=args.private, commit_message=args.commit_message)
    print(f"Pushed {args.model} to {args.repo_id} (commit {commit}); pin it with revision={commit!r}")
    return 0
