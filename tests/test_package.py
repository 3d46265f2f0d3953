"""`import multigroup` is light (the CLI's --help starts at once), yet the package keeps its promises: every public
name imports on first use, and that first use registers multigroup with transformers' Auto classes."""

import os
import subprocess
import sys

import pytest

import multigroup

from conftest import REPO_ROOT


def run_fresh(code: str) -> str:
    """Run code in a fresh interpreter (one where nothing is imported yet) and return its stdout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_import_and_every_help_load_neither_torch_nor_transformers():
    code = (
        "import contextlib, io, sys\n"
        "import multigroup\n"
        "from multigroup.cli import COMMANDS, main\n"
        "multigroup.__version__, multigroup.EVALUATE_MODULE, dir(multigroup)\n"
        "for argv in [['--help']] + [[name, '--help'] for name in COMMANDS]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))\n"
    )
    assert run_fresh(code) == "[]"


@pytest.mark.parametrize("first_use", ["from multigroup import MISSING", "multigroup.MultiGroupConfig"])
def test_the_first_use_of_a_public_name_lets_transformers_load_a_saved_folder_without_remote_code(
    saved_article_model, first_use
):
    code = (
        "import multigroup\n"
        f"{first_use}\n"
        "from transformers import AutoConfig, AutoModel, AutoTokenizer, pipeline\n"
        f"folder = {str(saved_article_model)!r}\n"
        "config = AutoConfig.from_pretrained(folder)\n"  # trust_remote_code unset: the registered class or an error
        "model = AutoModel.from_pretrained(folder)\n"
        "clf = pipeline('multi-group-classification', model=model, tokenizer=AutoTokenizer.from_pretrained(folder))\n"
        "print(type(config).__module__, type(model).__module__, type(clf).__module__)\n"
    )
    installed = ["multigroup.hub_code.configuration_multigroup", "multigroup.hub_code.modeling_multigroup"]
    assert run_fresh(code).split() == [*installed, "multigroup.hub_code.pipeline_multigroup"]


def test_public_names_are_listed_and_imported_on_demand():
    assert set(multigroup.__all__) <= set(dir(multigroup))
    namespace = {}
    exec("from multigroup import *", namespace)
    assert set(multigroup.__all__) <= set(namespace)
    assert multigroup.AutoModelForMultiGroupClassification.config_class is multigroup.MultiGroupConfig
    with pytest.raises(ImportError, match="NoSuchName"):
        exec("from multigroup import NoSuchName", {})
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        multigroup.no_such_name
