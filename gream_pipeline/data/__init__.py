"""Data loading, validation, raw Amazon preprocessing and the leave-one-out split."""
