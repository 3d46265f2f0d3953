"""Push a saved model folder to the Hugging Face Hub, with a model card (README.md) written from its config."""


def register(parser) -> None:
    parser.add_argument("--model", required=True, help="a saved multigroup model folder")
    parser.add_argument("--repo-id", required=True, help="namespace/name on the Hub")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--commit-message", default=None)


def run(args, extra: list[str]) -> int:
    from ..hub import push_folder

    commit = push_folder(args.model, args.repo_id, private=args.private, commit_message=args.commit_message)
    print(f"Pushed {args.model} to {args.repo_id} (commit {commit}); pin it with revision={commit!r}")
    return 0
