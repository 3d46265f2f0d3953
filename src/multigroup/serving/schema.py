"""The OpenAPI 3.1 description of `multigroup serve` (served at `GET /openapi.json`)."""

from .. import __version__

ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_schema(group_names: list[str] | None, limits) -> dict:
    """The schema; `group_names` (once the model is loaded) lists the values `groups` takes."""
    group = {"type": "string", **({"enum": group_names} if group_names else {})}
    text = {"type": "string", "maxLength": limits.max_chars}
    request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "inputs": {"oneOf": [text, {"type": "array", "items": text, "maxItems": limits.max_texts}]},
            "parameters": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "top_k": {
                        "type": ["integer", "null"],
                        "minimum": 1,
                        "default": 1,
                        "description": "1: the decision per group; k: the k best labels with scores; null: all.",
                    },
                    "groups": {"type": "array", "items": group, "description": "Only these groups, in group order."},
                    "threshold": {
                        "description": "Multilabel thresholds: one probability, or {group: probability or list}.",
                        "oneOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "object"}],
                    },
                },
            },
        },
        "example": {"inputs": ["The food was great", "Slow service"], "parameters": {"top_k": 2}},
    }
    prediction = {"type": "object", "description": "Keyed by group name: {label, score}, a list of them, or {value}."}
    errors = {
        "400": _json(ERROR, "A malformed body, a text that is not a string, a wrong parameter: `error` says which."),
        "413": _json(ERROR, "Too many texts, a text too long, or a body too large."),
        "503": _json(ERROR, "The model is still loading."),
    }
    answer = {"oneOf": [prediction, {"type": "array", "items": prediction}]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "multigroup serve", "version": __version__},
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Predict every label group of one text or a list of texts.",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                    "responses": {"200": _json(answer, "One prediction for a text, a list for a list."), **errors},
                }
            },
            "/health": {"get": {"summary": "200 once the model is loaded, 503 before.", "responses": {
                "200": _json({"type": "object"}, "Ready."), "503": _json({"type": "object"}, "Loading.")}}},
            "/info": {"get": {"summary": "The model's groups, relations and the server's limits.",
                              "responses": {"200": _json({"type": "object"}, "The groups and limits.")}}},
            "/": {"get": {"summary": "A page to try the model.", "responses": {"200": {"description": "HTML."}}}},
        },
    }  # fmt: skip
