"""Trainers: credit-assignment estimators (``credit/``), and later losses and the trainer loop."""
