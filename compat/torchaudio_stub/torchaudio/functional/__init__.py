"""Stand-in for ``torchaudio.functional``: every call raises (see ``torchaudio`` stub docstring)."""

from torchaudio import _MESSAGE


def resample(*args, **kwargs):
    raise RuntimeError(_MESSAGE)
