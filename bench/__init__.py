"""Benchmarks: numbers and ratios against the targets, printed; never timed assertions in the tests."""
