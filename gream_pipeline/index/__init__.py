"""Semantic item index: text fusion, embedders, RQ-KMeans (faiss) and the conflict slot."""
