"""Plain Python and torch, no Django (STYLE.md C5): artifacts, predictors, batching, training.

Heavy libraries (torch, transformers, shap, opacus) are imported inside functions, so that web
processes that never run a model start fast.
"""
