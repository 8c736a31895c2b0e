import glob
import json
import logging
import re

import pytest

from detrex.utils.events import (
    CommonMetricPrinter,
    EventStorage,
    JSONWriter,
    TensorboardXWriter,
    get_event_storage,
)


def _fill(storage: EventStorage, start: int, stop: int) -> None:
    for it in range(start, stop):
        storage.iter = it
        storage.put_scalar("data_time", 0.01 * (it + 1))
        storage.put_scalar("total_loss", float(it))
        storage.put_scalars(loss_class=10.0 - it, loss_bbox=2.0 * it)
        storage.put_scalar("lr", 1e-4, smoothing_hint=False)


def test_storage_history_and_smoothing():
    with EventStorage(start_iter=0) as storage:
        assert get_event_storage() is storage
        _fill(storage, 0, 5)
        assert storage.history("total_loss").values() == [(float(i), i) for i in range(5)]
        assert storage.latest()["loss_bbox"] == (8.0, 4)
        smoothed = storage.latest_with_smoothing_hint(window_size=3)  # iterations 2, 3, 4
        assert smoothed["total_loss"] == (3.0, 4)  # median of 2, 3, 4
        assert smoothed["loss_class"] == (7.0, 4)
        assert smoothed["lr"] == (1e-4, 4)  # no smoothing hint: the raw value
        assert storage.count_samples("total_loss", window_size=3) == 3
        with pytest.raises(ValueError, match="smoothing_hint"):
            storage.put_scalar("lr", 1.0, smoothing_hint=True)
        with pytest.raises(KeyError, match="nope"):
            storage.history("nope")
    with pytest.raises(RuntimeError, match="EventStorage"):
        get_event_storage()


def test_storage_state_dict_restores_smoothing():
    with EventStorage(0) as full:
        _fill(full, 0, 10)
        expected = full.latest_with_smoothing_hint(4)
    with EventStorage(0) as first:
        _fill(first, 0, 6)
        state = first.state_dict()
    with EventStorage(6) as resumed:
        resumed.load_state_dict(state)
        assert resumed.latest() == {}  # restored history is not re-written by the writers
        _fill(resumed, 6, 10)
        assert resumed.latest_with_smoothing_hint(4) == expected
        assert resumed.history("total_loss").global_avg() == pytest.approx(4.5)


def test_json_writer_one_object_per_iteration(tmp_path):
    path = tmp_path / "metrics.json"
    writer = JSONWriter(str(path), window_size=1)
    with EventStorage(0) as storage:
        _fill(storage, 0, 2)
        writer.write()
        writer.write()  # nothing new: no duplicate line
        _fill(storage, 2, 3)
        storage.put_scalar("bbox/AP", 12.5, smoothing_hint=False)
        writer.write()
        storage.put_scalar("bbox/AP50", 30.0, smoothing_hint=False)  # same iteration, new name
        writer.write()
    writer.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2, 2]
    assert lines[0] == {
        "iteration": 1,
        "data_time": 0.02,
        "total_loss": 1.0,
        "loss_class": 9.0,
        "loss_bbox": 2.0,
        "lr": 1e-4,
    }
    assert lines[1]["bbox/AP"] == 12.5 and lines[1]["total_loss"] == 2.0
    assert lines[2] == {"iteration": 2, "bbox/AP50": 30.0}


def test_json_writer_resume_drops_the_rows_to_be_recomputed(tmp_path):
    path = tmp_path / "metrics.json"
    rows = [{"iteration": i, "total_loss": float(i)} for i in range(0, 30, 5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    writer = JSONWriter(str(path), window_size=1)
    writer.resume_from(15)  # the interrupted run had written 15, 20, 25 after its last checkpoint
    with EventStorage(15) as storage:
        _fill(storage, 15, 16)
        writer.write()
    writer.close()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines if x != "not json"] == [0, 5, 10, 15]
    assert "not json" in lines  # rows it cannot read are kept, not lost
    JSONWriter(str(path)).resume_from(100)  # nothing after it: the file is left as it is
    assert path.read_text().splitlines() == lines


@pytest.fixture
def printer_logs(caplog):
    logger = logging.getLogger("detrex.utils.events")  # "detrex" may not propagate (setup_logger)
    logger.addHandler(caplog.handler)
    propagate, logger.propagate = logger.propagate, False  # each record once, whatever the set-up
    with caplog.at_level(logging.INFO, logger="detrex.utils.events"):
        yield caplog
    logger.removeHandler(caplog.handler)
    logger.propagate = propagate


def test_common_metric_printer_line(printer_logs):
    printer = CommonMetricPrinter(max_iter=100, window_size=20)
    with EventStorage(0) as storage:
        for it in range(20):
            storage.iter = it
            storage.put_scalar("data_time", 0.0125)
            storage.put_scalar("total_loss", 1.5)
            storage.put_scalars(loss_class=1.0, loss_bbox=0.5)
            storage.put_scalars(time=0.25)
            storage.put_scalar("lr", 1e-4, smoothing_hint=False)
        printer.write()
        printer.write()  # same iteration: printed once
    lines = [r.getMessage() for r in printer_logs.records if r.name == "detrex.utils.events"]
    assert len(lines) == 1
    assert lines[0] == (
        " eta: 0:00:20  iter: 19  total_loss: 1.5  loss_class: 1  loss_bbox: 0.5  time: 0.2500  "
        "last_time: 0.2500  data_time: 0.0125  last_data_time: 0.0125   lr: 0.0001"
    )
    assert re.fullmatch(r" eta: \d+:\d\d:\d\d  iter: 19  total_loss: .*   lr: 0\.0001", lines[0])


def test_tensorboard_writer_writes_events(tmp_path):
    writer = TensorboardXWriter(str(tmp_path))
    with EventStorage(0) as storage:
        _fill(storage, 0, 3)
        writer.write()
    writer.close()
    files = glob.glob(str(tmp_path / "events.out.tfevents.*"))
    assert len(files) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(files[0])
    acc.Reload()
    events = acc.Scalars("loss_bbox")
    assert [(e.step, e.value) for e in events] == [(2, 2.0)]  # median of 0, 2, 4


def _tensorboard_scalars(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))  # a folder: all its event files, as TensorBoard reads them
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_writer_resume_purges_the_interrupted_steps(tmp_path):
    writer = TensorboardXWriter(str(tmp_path), window_size=1)
    with EventStorage(0) as storage:
        for it in range(6):
            _fill(storage, it, it + 1)
            writer.write()
    writer.close()
    resumed = TensorboardXWriter(str(tmp_path), window_size=1)
    resumed.resume_from(3)
    with EventStorage(3) as storage:
        for it in range(3, 5):
            storage.iter = it
            storage.put_scalar("total_loss", 100.0 + it)
            resumed.write()
    resumed.close()
    assert _tensorboard_scalars(tmp_path, "total_loss") == [
        (0, 0.0),
        (1, 1.0),
        (2, 2.0),
        (3, 103.0),
        (4, 104.0),
    ]
