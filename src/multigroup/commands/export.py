"""Export a saved model to ONNX (one graph, dynamic batch and length, plus config and tokenizer to decode groups)."""


def register(parser) -> None:
    parser.add_argument("format", choices=["onnx"], help="the export format")
    parser.add_argument("--model", required=True, help="a saved multigroup model folder")
    parser.add_argument("--output", required=True, help="the folder to write model.onnx, config and tokenizer to")
    parser.add_argument("--quantize", action="store_true", help="also write model_int8.onnx (dynamic int8)")
    parser.add_argument("--opset", type=int, default=17, help="the ONNX opset version")


def run(args, extra: list[str]) -> int:
    from ..onnx import export_onnx
    from .common import reading_model

    with reading_model(args.model):
        path = export_onnx(args.model, args.output, opset=args.opset, quantize=args.quantize)
    print(f"Wrote {path}" + (" and model_int8.onnx" if args.quantize else ""))
    print("Run it: from multigroup.onnx import OnnxMultiGroupClassifier; OnnxMultiGroupClassifier(folder)(texts)")
    print("Without multigroup: sys.path.insert(0, folder); from onnx_multigroup import OnnxMultiGroupClassifier")
    return 0
