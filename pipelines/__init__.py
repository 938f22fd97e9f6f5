"""convflow's orchestration: config loading, the DAG, the cached runner, the CLI."""
