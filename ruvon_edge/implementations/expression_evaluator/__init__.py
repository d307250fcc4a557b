"""expression_evaluator."""
