"""Score a saved model on a labelled file: per-group table, per-label report, metrics.json and PNG plots."""

from pathlib import Path


def register(parser) -> None:
    from .common import add_labelled_file_arguments

    add_labelled_file_arguments(parser, "JSONL, CSV or parquet with the text and group columns")
    parser.add_argument("--output-dir", required=True, help="where metrics.json and the PNG plots are written")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures (they need matplotlib)")


def run(args, extra: list[str]) -> int:
    import numpy as np

    from .. import plots
    from ..calibration import reliability_bins
    from ..hub import read_evaluations, record_evaluation, same_file, split_name
    from ..metrics import classification_report, compute_metrics, format_metrics_table, format_report
    from .common import labelled_logits, report_unknown_labels, write_json

    config, logits, labels, missed = labelled_logits(args)
    metrics = compute_metrics(config, logits, labels, missed=missed)
    report_unknown_labels(missed, args.file)
    report = classification_report(config, logits, labels)
    print(format_metrics_table(metrics, config) + "\n\n" + format_report(report))

    # The same file as one the model was tuned on keeps that mark; any other file is held out.
    source = args.model or args.onnx
    used_for = next((e["used_for"] for e in read_evaluations(source) if same_file(e["file"], args.file)), [])
    evaluation = {"file": args.file, "split": split_name(args.file), "used_for": used_for, "metrics": metrics,
                  "unknown_labels": {"rule": args.unknown_labels, "scored_as_misses": missed}}  # fmt: skip
    if used_for:
        print(f"Note: {args.file} also chose the model's {' and '.join(used_for)}; these scores are optimistic.")
    output = Path(args.output_dir)
    backend = {"onnx": args.onnx, "graph": "int8" if args.int8 else "fp32"} if args.onnx else {}
    write_json(output / "metrics.json", {"model": source, **backend, **evaluation, "report": report})
    written = [output / "metrics.json"]
    if args.model and Path(args.model).is_dir():  # the card leads with held-out scores (an ONNX folder has none)
        record_evaluation(args.model, evaluation)
        written.append(Path(args.model) / "README.md")
    plotting = not args.no_plots
    if plotting:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            plotting = False
            print("Skipped the PNG plots: matplotlib is not installed; pip install 'multigroup[plots]' for them, "
                  "or pass --no-plots to silence this.")  # fmt: skip
    if plotting:
        for name, rows in report.items():
            written.append(plots.f1_bars(name, rows, output / f"f1_{name}.png"))
        predictions = config.group_predictions(logits)
        for group, columns in zip(config.groups, config.group_slices.values()):
            if group["type"] == "multiclass":
                present = ~np.isnan(labels[:, columns]).any(1)
                y_true = labels[present, columns].argmax(1)
                y_pred = predictions[group["name"]]["index"].numpy()[present]
                path = output / f"confusion_{group['name']}.png"
                written.append(plots.confusion_matrix(group["name"], group["labels"], y_true, y_pred, path))
                if f"{group['name']}_ece" in metrics:  # (none for a group no row of the file carries)
                    scores = predictions[group["name"]]["scores"].numpy()[present]
                    bins = reliability_bins(scores, np.eye(len(group["labels"]))[y_true])
                    path = output / f"reliability_{group['name']}.png"
                    written.append(plots.reliability(group["name"], bins, metrics[f"{group['name']}_ece"], path))
    print("Wrote " + ", ".join(str(path) for path in written))
    return 0
