"""Import-only stand-in for ``torchaudio`` in gream's CPU environment.

Why it exists: LLaMA-Factory 0.9.5 imports ``torchaudio`` at module top in ``data/mm_plugin.py`` although only
audio datasets use it, and every torchaudio wheel on PyPI for torch 2.13 is a CUDA build whose extension fails to
load on a CPU-only torch (``libc10_cuda.so``).  gream never trains on audio, so this package lets the import
succeed and makes any actual audio call fail loudly.  Install a real torchaudio (and uninstall
``gream-torchaudio-stub``) on machines where one works.
"""

__version__ = "0.0.0+gream.stub"

_MESSAGE = (
    "torchaudio is not available in gream's CPU environment (this is gream-torchaudio-stub); "
    "audio datasets are unsupported here. Install a torchaudio build matching your torch to use audio."
)


def load(*args, **kwargs):
    raise RuntimeError(_MESSAGE)


def __getattr__(name: str):
    raise AttributeError(f"torchaudio.{name}: {_MESSAGE}")
