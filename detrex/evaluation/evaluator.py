"""The evaluator protocol and the inference loop that feeds it."""

from __future__ import annotations

import datetime
import inspect
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from detrex.utils import comm

__all__ = ["DatasetEvaluator", "DatasetEvaluators", "inference_on_dataset", "inference_context"]

logger = logging.getLogger(__name__)


class DatasetEvaluator:
    """Accumulates a model's outputs over a dataset, then computes metrics.

    reset() before a pass; process(inputs, outputs) for each batch (inputs: the loader's list of dicts,
    outputs: the model's list of dicts); evaluate() -> {task: {metric: value}} (gathering across ranks
    where the evaluator is distributed; non-main ranks then return {}).
    """

    def reset(self) -> None:
        pass

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        pass

    def evaluate(self) -> dict | None:
        pass


class DatasetEvaluators(DatasetEvaluator):
    """Several evaluators run side by side; their results are merged (task names must not collide)."""

    def __init__(self, evaluators: Sequence[DatasetEvaluator]):
        super().__init__()
        self._evaluators = list(evaluators)

    def reset(self) -> None:
        for evaluator in self._evaluators:
            evaluator.reset()

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for evaluator in self._evaluators:
            evaluator.process(inputs, outputs)

    def evaluate(self, img_ids: Sequence[int] | None = None) -> OrderedDict:
        results = OrderedDict()
        for evaluator in self._evaluators:
            for task, value in (_evaluate(evaluator, img_ids) or {}).items():
                if task in results:
                    raise KeyError(f"two evaluators both produced results for task {task!r}")
                results[task] = value
        return results


def _evaluate(evaluator: DatasetEvaluator, img_ids: Sequence[int] | None) -> dict | None:
    """``evaluator.evaluate()``, restricted to ``img_ids`` where the evaluator can be (an ``img_ids`` argument)."""
    if img_ids is not None and "img_ids" in inspect.signature(evaluator.evaluate).parameters:
        return evaluator.evaluate(img_ids=img_ids)
    return evaluator.evaluate()


@contextmanager
def inference_context(model: nn.Module):
    """model.eval() inside the block; the previous train/eval mode is restored on exit."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def _progress_bar(total: int | None):
    if not sys.stderr.isatty() or not comm.is_main_process():
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc="inference", unit="batch", leave=False)


def inference_on_dataset(
    model: nn.Module,
    data_loader: Iterable,
    evaluator: DatasetEvaluator | Sequence[DatasetEvaluator] | None,
    log_period_s: float = 5.0,
    max_batches: int | None = None,
) -> dict:
    """Run `model` on every batch of `data_loader` in eval mode under torch.no_grad(), feed the
    evaluator, and return evaluator.evaluate() ({} on non-main ranks or without an evaluator).

    max_batches: stop after that many batches (per process), a quick check such as
    ``train.fast_dev_run``; the metrics then cover only the images that were run (evaluators whose
    ``evaluate`` takes ``img_ids``, like COCOEvaluator) and say so in the log.

    Logs progress every `log_period_s` seconds: per-image data / inference / evaluation times that
    exclude the first warm-up batches, and an ETA. Shows a tqdm bar when stderr is a terminal.
    """
    if evaluator is None:
        evaluator = DatasetEvaluators([])
    elif not isinstance(evaluator, DatasetEvaluator):
        evaluator = DatasetEvaluators(evaluator)
    total = len(data_loader) if hasattr(data_loader, "__len__") else None
    full_total = total
    if max_batches is not None:
        if max_batches < 1:
            raise ValueError(f"max_batches must be >= 1, got {max_batches}")
        total = max_batches if total is None else min(total, max_batches)
    logger.info(f"Start inference on {total if total is not None else 'an unknown number of'} batches")
    seen_ids: set = set()
    evaluator.reset()

    num_warmup = min(5, total - 1) if total else 5
    times = {"data": 0.0, "inference": 0.0, "eval": 0.0}
    num_images = num_timed_images = 0
    bar = _progress_bar(total)
    with ExitStack() as stack:
        stack.enter_context(inference_context(model))
        stack.enter_context(torch.no_grad())
        start = last_log = time.perf_counter()
        data_start = start
        for idx, inputs in enumerate(data_loader):
            if max_batches is not None and idx == max_batches:
                break
            if idx == num_warmup:  # restart the clocks: the first batches include one-off setup costs
                start, times, num_timed_images = time.perf_counter(), dict.fromkeys(times, 0.0), 0
            t0 = time.perf_counter()
            times["data"] += t0 - data_start
            outputs = model(inputs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t1 = time.perf_counter()
            times["inference"] += t1 - t0
            evaluator.process(inputs, outputs)
            data_start = time.perf_counter()
            times["eval"] += data_start - t1
            num_images += len(inputs)
            if max_batches is not None:
                seen_ids.update(inp["image_id"] for inp in inputs if "image_id" in inp)
            num_timed_images += len(inputs) if idx >= num_warmup else 0
            if bar is not None:
                bar.update(1)
            if data_start - last_log > log_period_s and num_timed_images > 0:
                last_log = data_start
                _log_progress(idx, total, times, num_timed_images, data_start - start, idx + 1 - num_warmup)
    if bar is not None:
        bar.close()

    elapsed = time.perf_counter() - start
    per_image = elapsed / max(num_timed_images, 1)
    pure = times["inference"] / max(num_timed_images, 1)
    logger.info(
        f"Total inference: {num_images} images; {datetime.timedelta(seconds=int(elapsed))} for the "
        f"{num_timed_images} after the warm-up batches ({per_image:.4f} s / img per device, "
        f"on {comm.get_world_size()} devices; pure inference {pure:.4f} s / img)"
    )
    img_ids = None
    if max_batches is not None and (full_total is None or max_batches < full_total):
        img_ids = sorted(set().union(*comm.all_gather(seen_ids)))
        logger.warning(
            f"Stopped at max_batches={max_batches} (of {full_total if full_total is not None else '?'} batches): "
            f"the metrics below cover only those {len(img_ids)} images, not the whole dataset"
        )
    results = _evaluate(evaluator, img_ids or None)
    return {} if results is None else results


def _log_progress(
    idx: int, total: int | None, times: dict, num_images: int, elapsed: float, timed_batches: int
) -> None:
    per_image = {k: v / num_images for k, v in times.items()}
    message = (
        f"Inference done {idx + 1}/{total if total is not None else '?'}. "
        f"Dataloading: {per_image['data']:.4f} s/img. Inference: {per_image['inference']:.4f} s/img. "
        f"Eval: {per_image['eval']:.4f} s/img. Total: {elapsed / num_images:.4f} s/img."
    )
    if total is not None:
        eta = datetime.timedelta(seconds=int(elapsed / max(timed_batches, 1) * (total - idx - 1)))
        message += f" ETA={eta}"
    logger.info(message)
