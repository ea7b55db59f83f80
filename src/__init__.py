"""bankseg: retail-bank customer tiering (分层) and segmentation (分群) with machine learning."""

__version__ = "0.1.0"
