"""The Inference Endpoints handler of a multigroup model: the request's answer is the pipeline's.

Hugging Face Inference Endpoints (huggingface-inference-toolkit) puts the model folder first on `sys.path`, imports
this file from it, builds `EndpointHandler(folder)` once, then calls it with each request's JSON body, one call at
a time: `{"inputs": "a text" or ["a text", ...], "parameters": {"top_k": ..., "groups": [...], "threshold": ...}}`.
Any exception becomes HTTP 400 `{"error": str(exception)}`, so each message says what is wrong and how to fix it.
Parameters sent in the query string arrive as strings (numbers as int, "true"/"false" as bool): `groups=a,b`,
`threshold=0.4` and `top_k=all` are read as the pipeline expects them.

This file is remote code: it imports only the standard library and transformers (the model's code files beside it
do the rest), and runs under transformers 4.51.3 and later.
"""

from typing import Any

from transformers import pipeline

PARAMETERS = ("top_k", "groups", "threshold")
EXAMPLE = '{"inputs": ["The food was great", "Slow service"], "parameters": {"top_k": 2}}'


def _parameter(name: str, value: Any) -> Any:
    """A query-string value in the type the pipeline takes; JSON values pass through unchanged."""
    if name == "groups" and not isinstance(value, (str, list)):  # `?groups=1` arrives as the int 1
        value = str(value)
    if not isinstance(value, str):
        return value
    if name == "top_k" and value.lower() in ("all", "none", "null"):
        return None
    if name == "top_k":
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"`top_k` must be a whole number of labels or `all`, got {value!r}.") from None
    if name == "groups":
        return [group.strip() for group in value.split(",") if group.strip()]
    if name == "threshold":
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"`threshold` must be a probability such as 0.4, got {value!r}.") from None
    return value


def read_request(data: Any) -> tuple[str | list, dict]:
    """A request body's `inputs` and `parameters` (in the types the pipeline takes), or a ValueError that says what
    is wrong with the body and how to fix it. `multigroup serve` reads its requests with this function too."""
    if not isinstance(data, dict) or "inputs" not in data:
        raise ValueError(f'The request body must be a JSON object with "inputs", for example {EXAMPLE}.')
    inputs, parameters = data["inputs"], data.get("parameters") or {}
    if not isinstance(inputs, (str, list)):
        raise ValueError(f'"inputs" must be a text or a list of texts, got {type(inputs).__name__}: {EXAMPLE}.')
    if not isinstance(parameters, dict):
        raise ValueError(f'"parameters" must be a JSON object, got {type(parameters).__name__}: {EXAMPLE}.')
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"Unknown parameter(s) {unknown}; this model takes {list(PARAMETERS)}.")
    return inputs, {name: _parameter(name, value) for name, value in parameters.items()}


class EndpointHandler:
    def __init__(self, path: str = ""):
        self.pipeline = pipeline("multi-group-classification", model=str(path), trust_remote_code=True)

    def __call__(self, data: dict) -> dict | list[dict]:
        inputs, parameters = read_request(data)
        return self.pipeline(inputs, **parameters)
