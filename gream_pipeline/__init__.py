"""gream: the GREAM method (arXiv 2510.20815) as an orchestration layer over faiss, LLaMA-Factory, verl and engines."""

__version__ = "0.1.0"
