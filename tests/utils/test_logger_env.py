import logging
import random
import re
import uuid

import numpy as np
import torch

from detrex.utils.env import collect_env_info, preserve_rng_state, seed_all_rng
from detrex.utils.logger import setup_logger


def test_setup_logger_console_format_and_rank_files(tmp_path, capsys):
    name = f"detrex_test_{uuid.uuid4().hex[:8]}"
    logger = setup_logger(str(tmp_path), distributed_rank=0, name=name, abbrev_name="dt")
    assert setup_logger(str(tmp_path), distributed_rank=0, name=name, abbrev_name="dt") is logger
    assert len(logger.handlers) == 2  # cached: the second call added nothing
    logging.getLogger(f"{name}.engine.train_loop").info("hello")
    logging.getLogger(f"{name}.engine.train_loop").warning("careful")
    out = capsys.readouterr().out.splitlines()
    # not a TTY under pytest: no colour codes
    assert re.fullmatch(r"\[\d\d/\d\d \d\d:\d\d:\d\d dt\.engine\.train_loop\]: hello", out[0])
    assert re.fullmatch(r"WARNING \[\d\d/\d\d \d\d:\d\d:\d\d dt\.engine\.train_loop\]: careful", out[1])
    text = (tmp_path / "log.txt").read_text()
    assert re.search(rf"\] {name}\.engine\.train_loop INFO: hello\n", text)

    logging.getLogger(name).info("Model:\nBigModel(...)", extra={"console": False})
    assert capsys.readouterr().out == ""  # a file-only record stays off the console
    assert re.search(rf"\] {name} INFO: Model:\nBigModel\(\.\.\.\)\n", (tmp_path / "log.txt").read_text())

    other = f"detrex_test_{uuid.uuid4().hex[:8]}"
    setup_logger(str(tmp_path), distributed_rank=1, name=other)
    logging.getLogger(other).info("from rank one")
    assert capsys.readouterr().out == ""  # rank 1 prints nothing
    assert "from rank one" in (tmp_path / "log.txt.rank1").read_text()
    assert "from rank one" not in (tmp_path / "log.txt").read_text()


def test_seed_all_rng_reproducible():
    assert seed_all_rng(7) == 7
    a = (random.random(), np.random.rand(), torch.rand(3))
    seed_all_rng(7)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[:2] == b[:2]
    torch.testing.assert_close(a[2], b[2], rtol=0, atol=0)
    assert isinstance(seed_all_rng(None), int)


def test_preserve_rng_state():
    seed_all_rng(3)
    expected = torch.rand(4)
    seed_all_rng(3)
    with preserve_rng_state():
        torch.rand(100), np.random.rand(5), random.random()
    torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)


def test_collect_env_info_lists_versions():
    info = collect_env_info()
    for key in ("Python", "torch", "torchvision", "numpy", "fvcore", "omegaconf", "cuDNN", "GPU available"):
        assert re.search(rf"^{key}\s", info, re.M), key
    assert torch.__version__ in info
