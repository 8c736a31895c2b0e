"""Install detrex: `pip install -e ".[dev]"` from the repository root."""

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
# the tests that compare with transformers' ConditionalDetrForObjectDetection (loading Hugging Face files and
# convert_checkpoint.py --to hf need neither); transformers builds its ResNet backbone from timm
HF = ["transformers>=5.0", "timm>=1.0"]


class BuildWithConfigs(build_py):
    """Copy the repository's `configs/` into the built package as `detrex/config/configs`.

    Editable installs resolve `configs/` next to the package instead (see detrex.config.get_config).
    """

    def run(self):
        super().run()
        src = os.path.join(HERE, "configs")
        dst = os.path.join(self.build_lib, "detrex", "config", "configs")
        if os.path.isdir(src):
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(
    name="detrex",
    version="0.1.0",
    description="Query-design DETR detectors (Anchor-DETR, Conditional-DETR) with lazy configs",
    python_requires=">=3.10",
    packages=find_packages(include=["detrex", "detrex.*", "projects", "projects.*"]),
    package_data={"projects": ["*/configs/*.py", "*/configs/models/*.py"]},
    cmdclass={"build_py": BuildWithConfigs},
    install_requires=[
        # 2.6: torch.nn.utils.get_total_norm (2.5: torch.OutOfMemoryError, serialization.safe_globals;
        # 2.4: torch.is_autocast_enabled(device))
        "torch>=2.6,!=2.13.*",  # the 2.13 CPU wheel has no matching torchvision build
        "torchvision>=0.21",  # the release built for torch 2.6
        "fvcore>=0.1.5",
        "iopath>=0.1.9",
        "omegaconf>=2.1",
        "pycocotools>=2.0.6",
        "scipy>=1.7",
        "numpy",
        "pillow",
        "pyyaml",
        "cloudpickle",
        "tqdm",
        "tabulate",
        "matplotlib",
        "tensorboard",
        "orjson",  # 2x faster parsing of the 450 MB COCO train json; the standard json module is the fallback
        "safetensors>=0.4",  # .safetensors checkpoints and Hugging Face model folders (no pickle)
    ],
    extras_require={
        "dev": [
            "pytest>=7",
            "pytest-xdist",
            "ruff>=0.4",
            "onnx",
            "onnxruntime",
            "faster-coco-eval>=1.6",
            *HF,
        ],
        "test": ["pytest>=7", "pytest-xdist", "ruff>=0.4"],
        # COCOEvaluator(use_fast_impl=True): same AP as pycocotools, ~7x faster (docs/performance.md)
        "fast": ["faster-coco-eval>=1.6"],
        "hf": HF,
    },
)
