"""The NIMA network (``network``), its 10-bin training targets (``labels``) and the EMD loss (``losses``)."""
