"""CPU kernels: faster or leaner ways to compute some of ``detrex.layers.functional``'s plain blocks on the CPU.

Every kernel computes the same maths as the plain PyTorch path it replaces (up to float rounding, or the
same distribution for random masks) and applies only to float32 CPU tensors in eager mode without
autocast; GPUs, bf16 / fp16, torch.compile, tracing and scripting always take the plain path. One switch
turns them all off: ``DETREX_CPU_KERNELS=0`` in the environment, ``train.cpu_kernels=False`` in a config
(applied by ``detrex.engine.default_setup`` and the tools), or ``with use_cpu_kernels(False):``. Off, a
train step uses stock PyTorch operators and autograd only. docs/performance.md measures what each one is
worth (paired A/B on the R50 train step and inference).

Kernels (name: maths; when it applies; test in tests/layers/cpu_kernels/):

``dropout`` (dropout.py): ``x * m / (1 - p)``, m Bernoulli(1 - p) per element, with m drawn byte-wise from
    numpy's SFC64 generator (seeded from torch's default generator) and saved as bool: the same
    distribution as ``F.dropout``, another random stream. ``dropout`` with 0 < p < 1 in training.
    test_dropout_kernels.py.
``dropout_attention`` (attention.py): ``softmax(q k^T / sqrt(d) + bias)`` with dropout, times v, saving the
    probabilities and a bool mask (scaled_dot_product_attention's CPU path with dropout keeps three float
    copies of the weights). ``attention`` in training with dropout > 0. test_attention_kernel.py.
``malloc`` (memory.py): glibc keeps freed memory for reuse instead of unmapping every block above 32 MiB,
    so large activations do not pay page faults each step. Process-wide, set by ``prepare_cpu_process``
    (train_net and the tools on the CPU). test_malloc_kernel.py.
"""

from .attention import DropoutAttention
from .dropout import Dropout
from .memory import keep_freed_memory
from .switch import ENV_VAR, KERNELS, active_kernels, applies, set_cpu_kernels, use_cpu_kernels

__all__ = [
    "ENV_VAR",
    "KERNELS",
    "Dropout",
    "DropoutAttention",
    "active_kernels",
    "applies",
    "prepare_cpu_process",
    "set_cpu_kernels",
    "use_cpu_kernels",
]


def prepare_cpu_process() -> bool:
    """Process-wide settings of a CPU run (the ``malloc`` kernel). Returns whether any was applied."""
    return "malloc" in active_kernels() and keep_freed_memory()
