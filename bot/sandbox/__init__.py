"""Local stand-ins for X and Discord, used by tests, benchmarks and `mutebot demo`."""
