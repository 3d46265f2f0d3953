"""How texts reach a model, each rule written once: every input is a string; texts go through in batches sorted by
length (little padding) and come back in input order; on an accelerator, the next batches are tokenized ahead.

The pipeline, `multigroup.inference.batched_logits`, the ONNX runner and the server all batch with these. This file
travels with saved models and ONNX folders: it imports only the standard library.
"""

import queue
import threading
from collections.abc import Callable, Iterator, Sequence, Sized
from itertools import islice

# On an accelerator, a background thread reads and tokenizes this many batches ahead while the model runs the current
# one. On CPU the forward already keeps the cores busy and the thread gains nothing (scripts/bench_pipeline_inputs.py):
# there each batch is tokenized in turn.
READ_AHEAD = 2
# A stream is read this many batches at a time; texts are sorted by length within that window, so that texts of
# similar length share a batch (little padding), and results are given back in input order.
WINDOW_BATCHES = 64


def check_texts(texts: Sequence, start: int = 0, name: Callable[[int], str] = "Input #{}".format) -> Sequence[str]:
    """The texts, or a TypeError naming the first item that is not a string by its position in the whole input
    (`name(position)`: `Input #3` by default)."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            hint = " For a datasets.Dataset, pass its column: clf(ds['text'])." if isinstance(text, dict) else ""
            shown = repr(text) if len(repr(text)) <= 80 else repr(text)[:77] + "..."
            raise TypeError(
                f"{name(start + i)} is {type(text).__name__} {shown}; every input must be a string (use '' for "
                f"none).{hint}"
            )
    return texts


def windows(stream: Iterator, size: int) -> Iterator[list[str]]:
    """The stream's texts in lists of `size` (the last one shorter), read one list at a time so that memory stays
    flat; each is checked (`check_texts`), an error naming the text by its position in the whole stream.

    ```python
    >>> [len(texts) for texts in windows(iter(["a", "bb", "c"]), 2)]
    [2, 1]

    ```
    """
    start = 0
    while texts := check_texts(list(islice(stream, size)), start):
        yield texts
        start += len(texts)


def by_length(items: Sequence[Sized]) -> list[int]:
    """The positions of `items` (texts, or token id lists), shortest first: the one order every batching uses."""
    return sorted(range(len(items)), key=lambda i: len(items[i]))


def length_batches(texts: Sequence[str], batch_size: int) -> Iterator[list[int]]:
    """The positions of `texts` in batches of `batch_size`, sorted by length, so that each batch pads little."""
    order = by_length(texts)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def batches_ahead(chosen: int | None, device) -> int:
    """How many batches to tokenize ahead: `chosen`, or by default `READ_AHEAD` on an accelerator and none on CPU."""
    return chosen if chosen is not None else 0 if device.type == "cpu" else READ_AHEAD


def read_ahead(items: Iterator, ahead: int) -> Iterator:
    """The items, in order, computed by a background thread at most `ahead` items before they are asked for (memory
    stays bounded); an exception raised there is raised here at its place in the sequence. `ahead=0`: no thread."""
    if ahead < 1:
        yield from items
        return
    done, buffer, stop = object(), queue.Queue(maxsize=ahead), threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return  # the caller stopped reading
            put((done, None))
        except BaseException as error:  # noqa: BLE001 - handed to the caller, raised there
            put((done, error))

    threading.Thread(target=produce, name="multigroup-read-ahead", daemon=True).start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()  # a caller that stops early (break, close, an error) ends the thread at its next item
