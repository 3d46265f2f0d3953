"""Export a saved model to ONNX (one graph, dynamic batch and length, plus config and tokenizer to decode groups)."""


def register(parser) -> None:
    parser.add_argument("format", choices=["onnx"], help="the export format")
    parser.add_argument("--model", required=True, help="a saved multigroup model folder")
    parser.add_argument("--output", required=True, help="the folder to write model.onnx, config and tokenizer to")
    parser.add_argument(
        "--quantize", action="store_true",
        help="also write model_int8.onnx (int8 weights per channel, embeddings in fp32; default: fp32 only)",
    )  # fmt: skip
    parser.add_argument(
        "--check-file",
        help="a labelled file (the validation file) to measure the int8 graph on: each group's F1 against the "
        "fp32 graph is printed and written to int8.json, and a slower recipe is tried if a group drops more than "
        "0.005 (default: none, the fastest recipe unmeasured)",
    )  # fmt: skip
    parser.add_argument("--text-column", default="text", help="the text column of --check-file (default text)")
    parser.add_argument("--opset", type=int, default=17, help="the ONNX opset version (default 17)")


def run(args, extra: list[str]) -> int:
    import json
    from pathlib import Path

    from ..onnx import INT8_REPORT, export_onnx
    from .common import reading_model

    if args.check_file and not args.quantize:
        raise ValueError("--check-file measures the int8 graph: add --quantize.")
    with reading_model(args.model):
        path = export_onnx(args.model, args.output, args.opset, args.quantize, args.check_file, args.text_column)
    print(f"Wrote {path}" + (" and model_int8.onnx" if args.quantize else ""))
    if args.check_file:
        report = json.loads((Path(args.output) / INT8_REPORT).read_text(encoding="utf-8"))
        print(f"int8 ({report['recipe']}) against fp32 on {args.check_file}, F1 micro / macro:")
        for name, scores in report["groups"].items():
            cells = "   ".join(f"{kind[3:]} {fp32:.4f} -> {int8:.4f}" for kind, (fp32, int8) in scores.items())
            print(f"  {name}: {cells}")
        if not report["within_budget"]:
            print(
                f"Warning: no recipe kept every group within {report['budget']} F1 on {args.check_file} "
                f"(worst drop per recipe: {report['tried']}); kept the closest. Use model.onnx where that matters."
            )
    print("Run it: from multigroup.onnx import OnnxMultiGroupClassifier; OnnxMultiGroupClassifier(folder)(texts)")
    print("Without multigroup: sys.path.insert(0, folder); from onnx_multigroup import OnnxMultiGroupClassifier")
    return 0
