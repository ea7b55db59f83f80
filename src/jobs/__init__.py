"""The work behind each job: plain functions that take typed arguments (tests call them directly).

``bankseg.cli`` turns a Hydra config into these arguments; nothing here touches DictConfig.
"""
