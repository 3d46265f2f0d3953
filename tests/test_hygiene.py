"""The remote-code files run on users' machines: they import only what they say and do no I/O at import; names
with unicode, quotes or HTML survive config.json, the model card and the CLI's output."""

import ast
import json
import sys
from pathlib import Path

from multigroup.cli import main
from multigroup.hub_code.card_multigroup import model_card
from multigroup.hub_code.modeling_multigroup import CODE_FILES
from multigroup.onnx import STANDALONE_FILES

from conftest import REPO_ROOT, run_python, tiny_model

SOURCE = REPO_ROOT / "src" / "multigroup" / "hub_code"  # the files that travel, and only they
# numpy comes with transformers; the ONNX runner alone imports its engine (on use: only ONNX folders hold it).
ALLOWED_TOP_LEVEL = {"torch", "transformers", "numpy"}
ALLOWED_IN = {"onnx_multigroup.py": {"onnxruntime"}}


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """(top-level module, relative level) for every import in a file, wherever it appears."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(((node.module or "").split(".")[0], node.level))
    return found


def test_every_file_of_the_folder_travels_and_nothing_else_does():
    in_folder = {path.name for path in SOURCE.glob("*.py")} - {"__init__.py"}
    assert set(CODE_FILES) | set(STANDALONE_FILES) == in_folder
    assert {"modeling_multigroup.py", "configuration_multigroup.py", "handler.py"} <= set(CODE_FILES)
    assert not any(path.suffix == ".py" and "multigroup" in path.stem for path in SOURCE.parent.iterdir())


def test_every_file_a_saved_folder_needs_is_imported_by_an_auto_map_module_itself():
    """transformers 4 copies, from a local folder, only the direct relative imports of the modules `auto_map` names:
    anything imported one step further would be missing there."""
    direct = set()
    for entry in ("modeling_multigroup.py", "configuration_multigroup.py"):
        direct |= {f"{module}.py" for module, level in imported_modules(SOURCE / entry) if level} | {entry}
    assert set(CODE_FILES) == direct


def test_the_folder_imports_only_the_standard_library_torch_transformers_and_each_other():
    siblings = {path.stem for path in SOURCE.glob("*.py")} - {"__init__"}
    for path in SOURCE.glob("*.py"):
        allowed = ALLOWED_TOP_LEVEL | ALLOWED_IN.get(path.name, set())
        for module, level in imported_modules(path):
            if level:
                assert module in siblings, f"{path.name} imports .{module}, which does not travel with it"
            elif module in siblings:  # the ONNX runner, imported from an ONNX folder as a top-level module
                continue
            else:
                assert module in allowed or module in sys.stdlib_module_names, f"{path.name} imports {module}"


IMPORT_AUDIT = """
import ast, importlib, sys, torch, transformers  # heavy imports first: only the remote files' own import is audited
from pathlib import Path

# Lines of import statements in the remote files: I/O while one of them runs is Python's import machinery.
import_lines = {}
for path in Path("code/remote").glob("*_multigroup.py"):
    import_lines[str(path.resolve())] = {
        line for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, (ast.Import, ast.ImportFrom))
        for line in range(node.lineno, node.end_lineno + 1)
    }
events = []

def audit(event, args):
    if event != "open" and not event.startswith(("socket.", "urllib.", "http.")):
        return
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename not in import_lines:
        frame = frame.f_back
    if frame is not None and frame.f_lineno not in import_lines[frame.f_code.co_filename]:
        events.append(f"{event} {args[0]!r} at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}")

sys.addaudithook(audit)
sys.path.insert(0, "code")
importlib.import_module("remote.modeling_multigroup")
importlib.import_module("remote.pipeline_multigroup")
print("EVENTS" + repr(events))
"""


def test_importing_the_remote_code_does_no_file_or_network_io(tmp_path):
    package = tmp_path / "code" / "remote"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in CODE_FILES:
        (package / name).write_text((SOURCE / name).read_text())
    completed = run_python(IMPORT_AUDIT, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split("EVENTS")[-1].strip() == "[]"


TRICKY = ['café "noir"', "<b>bold</b> & co", "emoji 🍣", "back\\slash", "pipe | sign", "ß"]
GROUPS = [
    {"name": "avis", "type": "multiclass", "labels": TRICKY[:3]},
    {"name": "étiquettes", "type": "multilabel", "labels": TRICKY[3:]},
]


def test_tricky_names_round_trip_through_config_card_and_cli(tmp_path):
    from multigroup import MultiGroupConfig

    model = tiny_model(GROUPS)
    model.save_pretrained(tmp_path / "model")
    from conftest import make_tokenizer

    make_tokenizer().save_pretrained(tmp_path / "model")
    assert MultiGroupConfig.from_pretrained(tmp_path / "model").groups == model.config.groups

    card = model_card(model.config, 'acme/"quoted" <model>')
    front_matter = card.split("---")[1]
    assert "<model>" not in card.split("---", 2)[2].split("```")[0]  # HTML escaped in the markdown body
    assert '"acme/\\"quoted\\" <model>"' in front_matter or "model-index" not in front_matter
    for label in TRICKY:
        escaped = label.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
        assert f"`{escaped}`" in card

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "é<1>", "text": "i love it"}, ensure_ascii=False) + "\n")
    output = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "model"),
                "--file",
                str(source),
                "--output",
                str(output),
                "--top-k",
                "0",
            ]
        )
        == 0
    )
    row = json.loads(output.read_text(encoding="utf-8"))
    assert row["id"] == "é<1>" and {p["label"] for p in row["avis"]} == set(TRICKY[:3])
    assert {p["label"] for p in row["étiquettes"]} == set(TRICKY[3:])
